//! One module per subcommand of the `dl4rs` program.

pub mod bench;
