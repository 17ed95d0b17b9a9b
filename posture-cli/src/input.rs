//! Reading untrusted input files (or stdin for `-`) with a size cap.

use std::io::Read;
use std::path::Path;

use anyhow::{Context as _, Result};

/// Reads `path` (stdin for `-`), reading at most `max + 1` bytes so the caller's parser
/// can refuse an oversized input without it ever being read whole. `what` names the input
/// in errors ("evidence", "message").
pub fn read_capped(path: &Path, max: usize, what: &str) -> Result<Vec<u8>> {
    let limit = u64::try_from(max).map_or(u64::MAX, |m| m.saturating_add(1));
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {what} from stdin"))?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut bytes))
            .with_context(|| format!("cannot read {what} {}", path.display()))?;
    }
    Ok(bytes)
}
