//! One integration-test binary, a module per topic (ripgrep's layout).

mod analyze;
mod batch_input;
mod cli;
mod e5s1_format;
mod http;
mod model;
mod segment;
mod serve;
mod support;
