//! KRO's CEL environment: the standard library, the extensions KRO enables, and the functions
//! the `cel` crate lacks, written to cel-go's and Kubernetes' semantics.

use cel::{Env, extensions};

/// The environment every [`super::Engine`] compiles and evaluates in.
pub(crate) fn environment() -> Env {
    let mut env = Env::stdlib();
    // Each extension registers distinct names: a failure here is a bug caught by any test.
    env.add_extension(extensions::strings)
        .and_then(|()| env.add_extension(extensions::lists))
        .and_then(|()| env.add_extension(extensions::encoders))
        .and_then(|()| env.add_extension(extensions::math))
        .expect("the built-in extensions register without conflicts");
    env
}
