//! KRO's own CEL functions.

use cel::{DeclarationError, Env};

#[allow(clippy::unnecessary_wraps)] // filled in with the KRO library
pub(super) fn register(_env: &mut Env) -> Result<(), DeclarationError> {
    Ok(())
}
