//! Exports of posture for consumers that speak other formats.
//!
//! - [`caep`]: an OpenID CAEP `device-compliance-change` Security Event Token, signed by
//!   the device key.
//! - [`intune`]: the single-line JSON of an Intune custom compliance discovery script and
//!   the matching rules file with remediation strings.
//! - [`opa`]: verified claims as an Open Policy Agent input document.

pub mod caep;
pub mod intune;
pub mod opa;
