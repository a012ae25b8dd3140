//! Switchyard's integration tests: one binary, one module per area.

mod amqp_clients;
mod amqp_lapin;
mod amqp_more_clients;
mod amqp_robustness;
mod durability;
mod filters;
mod hostile_plugins;
mod hot_reload;
mod messaging;
mod plugin_deploys;
mod policies;
mod robustness;
mod standard_routers;
