//! The two traits a plugin author implements: [`Router`] for an exchange type and [`Filter`]
//! for a consumer filter. Neither mentions WebAssembly; both can be exercised in native unit
//! tests by calling the methods directly.

use switchyard_value::Table;

use crate::message::{Binding, Destination, Message, PluginInfo};

/// An exchange type. One value of the implementing type is one exchange: the SDK creates it
/// when the broker declares an exchange of this type and keeps it until the exchange is deleted.
///
/// The broker owns the authoritative bindings and replays them into a fresh instance whenever it
/// needs one, so an implementation keeps only a derived index and never persists anything.
pub trait Router: Sized + 'static {
    /// Describes the plugin; `info().name` is the exchange type users declare.
    fn info() -> PluginInfo;

    /// Creates an exchange from its declaration arguments; an error refuses the declaration.
    fn create(arguments: &Table) -> Result<Self, String>;

    /// Checks a binding before the broker accepts it; an error refuses it with that message.
    /// The default accepts every binding.
    fn validate_binding(&self, binding: &Binding) -> Result<(), String> {
        let _ = binding;
        Ok(())
    }

    /// Adds an accepted binding to the index.
    fn bind(&mut self, binding: Binding);

    /// Removes a binding that `bind` added (same destination, key and arguments).
    fn unbind(&mut self, binding: &Binding);

    /// The destinations that get a copy of `message`. Duplicates are allowed (the broker
    /// delivers one copy per destination); an empty list means unroutable.
    fn route(&self, message: &Message) -> Vec<Destination>;
}

/// A consumer filter. One value of the implementing type is one compiled expression.
pub trait Filter: Sized + 'static {
    /// Describes the plugin; `info().name` is the filter name consumers ask for.
    fn info() -> PluginInfo;

    /// Compiles an expression; the error is shown to the consumer, so say where and why.
    fn compile(expression: &str) -> Result<Self, String>;

    /// Whether the message passes.
    fn matches(&self, message: &Message) -> bool;
}
