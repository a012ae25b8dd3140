#![doc = include_str!("../README.md")]

extern crate self as switchyard_plugin;

mod guest;
pub mod headers;
mod message;
mod plugin;
pub mod topic;

pub use guest::log;
pub use message::{Binding, Destination, Id, Message, PluginInfo, Properties, Reads};
pub use plugin::{Filter, Router};
pub use switchyard_value::{Decimal, Table, Value};

/// How important a log line is; see [`log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Makes a [`Router`] the component's `exchange` export. Call it once, at the crate root of a
/// `cdylib` crate built for `wasm32-wasip2`.
#[macro_export]
macro_rules! export_router {
    ($router:ty) => {
        #[doc(hidden)]
        type __SwitchyardRouterExport = $crate::__private::RouterExport<$router>;
        // Natively (unit tests) there is no component to export into.
        #[cfg(target_arch = "wasm32")]
        $crate::__private::router::__export_router_world!(
            __SwitchyardRouterExport with_types_in $crate::__private::router
        );
    };
}

/// Makes a [`Filter`] the component's `message-filter` export. Call it once, at the crate root
/// of a `cdylib` crate built for `wasm32-wasip2`.
#[macro_export]
macro_rules! export_filter {
    ($filter:ty) => {
        #[doc(hidden)]
        type __SwitchyardFilterExport = $crate::__private::FilterExport<$filter>;
        #[cfg(target_arch = "wasm32")]
        $crate::__private::filter::__export_filter_world!(
            __SwitchyardFilterExport with_types_in $crate::__private::filter
        );
    };
}

/// Not public API: what the export macros expand to.
#[doc(hidden)]
pub mod __private {
    pub use crate::guest::{FilterExport, RouterExport, filter, router};
    pub use wit_bindgen::rt as wit_bindgen_rt;
}
