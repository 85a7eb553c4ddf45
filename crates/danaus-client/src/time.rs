//! Times as users type and read them (re-exported from `danaus-model`,
//! where the server's messages use them too).

pub use danaus_model::time::*;
