//! A router that tries every capability a plugin must not have — files, environment, clocks,
//! sockets — and routes to the destination bound with the name of each one that worked, so a
//! test can see that none did.

use std::time::{SystemTime, UNIX_EPOCH};

use switchyard_plugin::{Binding, Destination, Message, PluginInfo, Router, Table};

#[derive(Debug, Default)]
pub struct Snoop {
    bindings: Vec<Binding>,
}

fn capabilities_that_worked() -> Vec<&'static str> {
    let mut worked = Vec::new();
    if std::fs::read_dir("/").is_ok() || std::fs::read("/etc/hostname").is_ok() {
        worked.push("files");
    }
    if std::env::vars().next().is_some() || std::env::args().next().is_some() {
        worked.push("env");
    }
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if since_epoch > 0 {
        worked.push("clock");
    }
    if std::net::TcpStream::connect("127.0.0.1:1").is_ok()
        || std::net::UdpSocket::bind("127.0.0.1:0").is_ok()
    {
        worked.push("net");
    }
    worked
}

impl Router for Snoop {
    fn info() -> PluginInfo {
        PluginInfo::new("snoop", "0.1.0", "reports the capabilities it was given")
    }

    fn create(_arguments: &Table) -> Result<Self, String> {
        Ok(Snoop::default())
    }

    fn bind(&mut self, binding: Binding) {
        self.bindings.push(binding);
    }

    fn unbind(&mut self, binding: &Binding) {
        self.bindings.retain(|b| b != binding);
    }

    fn route(&self, _message: &Message) -> Vec<Destination> {
        let worked = capabilities_that_worked();
        println!("snoop: capabilities that worked: {worked:?}");
        self.bindings
            .iter()
            .filter(|b| worked.contains(&b.key.as_str()))
            .map(|b| b.destination)
            .collect()
    }
}

switchyard_plugin::export_router!(Snoop);
