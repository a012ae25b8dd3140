//! Who may connect, and how much a connection may cost before it has authenticated: the
//! connection limits (in all, and per IP address) and the permits for password checks.
//!
//! A connection holds a [`ConnectionSlot`] from the moment it is accepted until it ends, in
//! whatever protocol; a connection past a limit is told why (in its protocol's terms) and
//! closed, and the others carry on.
//! Password checks are Argon2 (about 19 MiB and tens of milliseconds each), so only a few run
//! at once and the rest wait their turn instead of exhausting memory and CPU.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::error::BrokerError;

use crate::config::LimitSettings;

#[derive(Debug)]
pub struct Admission {
    limits: LimitSettings,
    open: Mutex<OpenConnections>,
    password_checks: Semaphore,
}

#[derive(Debug, Default)]
struct OpenConnections {
    total: u32,
    by_address: HashMap<IpAddr, u32>,
}

/// A connection's place under the limits; given back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    admission: Arc<Admission>,
    address: IpAddr,
}

impl Admission {
    pub fn new(limits: LimitSettings) -> Arc<Self> {
        Arc::new(Admission {
            limits,
            open: Mutex::default(),
            password_checks: Semaphore::new(limits.max_concurrent_password_checks.max(1) as usize),
        })
    }

    /// A slot for a connection from `address`, or why there is none.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<ConnectionSlot, BrokerError> {
        let mut open = self.open.lock();
        if open.total >= self.limits.max_connections {
            return Err(limit_reached(format!(
                "the broker has {} connections, its limit (max_connections)",
                self.limits.max_connections
            )));
        }
        let from_address = open.by_address.entry(address).or_default();
        if *from_address >= self.limits.max_connections_per_address {
            return Err(limit_reached(format!(
                "{address} has {} connections, the limit per address (max_connections_per_address)",
                self.limits.max_connections_per_address
            )));
        }
        *from_address += 1;
        open.total += 1;
        Ok(ConnectionSlot {
            admission: Arc::clone(self),
            address,
        })
    }

    /// Waits for a turn to check a password; the check runs while the permit is held.
    pub async fn password_check(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.password_checks
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.by_address.remove(&self.address);
            }
        }
    }
}

fn limit_reached(reason: String) -> BrokerError {
    BrokerError::TooManyConnections { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_in_all_and_per_address_and_come_back_when_dropped() {
        let admission = Admission::new(LimitSettings {
            max_connections: 3,
            max_connections_per_address: 2,
            ..LimitSettings::default()
        });
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = admission.admit(a).unwrap();
        let _second = admission.admit(a).unwrap();
        let refused = admission.admit(a).unwrap_err().to_string();
        assert!(refused.contains("per address"), "{refused}");
        let _third = admission.admit(b).unwrap();
        let refused = admission.admit(b).unwrap_err().to_string();
        assert!(refused.contains("max_connections)"), "{refused}");
        drop(first);
        admission.admit(a).unwrap();
    }
}
