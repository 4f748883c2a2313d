//! Options nats-server users write have their effect, on canopy-server and nats-server alike.

mod support;
