//! Antivirus products registered with Windows Security Center (WMI
//! `root\SecurityCenter2` `AntiVirusProduct`), and the `productState` bit field decoded
//! (pure; every OS).
//!
//! `productState` is not documented by Microsoft (its SDK is under NDA). The decoding used
//! by everyone, and here, is the one published from observation, e.g. in the PowerShell
//! tip "Identifying Antivirus Engine State" (Idera, 2020,
//! `https://blog.idera.com/database-tools/identifying-antivirus-engine-state`) and the
//! Stack Overflow thread "WMI Security Center productState clarification"
//! (`https://stackoverflow.com/questions/4700897`): bits 12-15 (`0xF000`) are the engine
//! state (`0x0000` off, `0x1000` on, `0x2000` snoozed, `0x3000` expired), bits 8-11
//! (`0x0F00`) the owner (`0x100` Microsoft/Windows, `0x000` a third party), bits 4-7
//! (`0x00F0`) the signatures (`0x00` up to date, `0x10` out of date). Third-party
//! products beside Defender appear as their own instances; Defender then reports itself
//! off (passive mode).

use serde::Serialize;
use serde_json::Value;

use crate::ps_json::{list, text, uint};

/// The engine state bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineState {
    /// Real-time protection off.
    Off,
    /// On.
    On,
    /// Snoozed (temporarily off).
    Snoozed,
    /// The product's licence expired.
    Expired,
    /// A value outside the published decoding.
    Other,
}

/// One registered antivirus product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AvProduct {
    /// `displayName`.
    pub name: String,
    /// The raw `productState`.
    pub product_state: u32,
    /// Decoded engine state.
    pub state: EngineState,
    /// Signatures up to date.
    pub signatures_up_to_date: bool,
    /// Microsoft's own (Defender).
    pub microsoft: bool,
    /// `pathToSignedProductExe`.
    pub path: String,
}

impl AvProduct {
    /// On, with current signatures.
    pub fn protecting(&self) -> bool {
        self.state == EngineState::On && self.signatures_up_to_date
    }
}

/// Decodes a `productState`.
pub fn decode(product_state: u32) -> (EngineState, bool, bool) {
    let state = match product_state & 0xF000 {
        0x0000 => EngineState::Off,
        0x1000 => EngineState::On,
        0x2000 => EngineState::Snoozed,
        0x3000 => EngineState::Expired,
        _ => EngineState::Other,
    };
    let up_to_date = product_state & 0x00F0 == 0;
    let microsoft = product_state & 0x0F00 == 0x0100;
    (state, up_to_date, microsoft)
}

/// Parses the `AntiVirusProduct` instances.
pub fn parse(value: &Value) -> Vec<AvProduct> {
    list(value)
        .into_iter()
        .filter_map(|v| {
            let product_state = u32::try_from(uint(v, "productState")?).ok()?;
            let (state, signatures_up_to_date, microsoft) = decode(product_state);
            Some(AvProduct {
                name: text(v, "displayName").unwrap_or_default(),
                product_state,
                state,
                signatures_up_to_date,
                microsoft,
                path: text(v, "pathToSignedProductExe").unwrap_or_default(),
            })
        })
        .collect()
}
