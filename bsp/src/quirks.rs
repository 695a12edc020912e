//! What some boards' device trees leave out, keyed by the root node's `compatible`.
//!
//! A quirk is a fact about a machine its firmware's tree should say and does not. Each entry
//! names the board, the fact, and why it holds, so a port can check it against the board.

/// How a board's firmware is called when its tree has no `/psci` node to say so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciConduit {
    /// `smc #0`: firmware at EL3 (or an emulator's built-in PSCI at that level).
    Smc,
    /// `hvc #0`.
    Hvc,
}

/// One board's quirks.
#[derive(Debug, PartialEq, Eq)]
pub struct Quirk {
    /// A root `compatible` string that identifies the board.
    pub compatible: &'static str,
    /// PSCI is there, over this conduit, although the tree has no `/psci`.
    pub psci: Option<PsciConduit>,
    /// Why: what was checked, for whoever ports the next board.
    pub why: &'static str,
}

/// The boards with quirks.
pub const QUIRKS: &[Quirk] = &[Quirk {
    compatible: "xlnx-versal-virt",
    psci: Some(PsciConduit::Smc),
    why: "Versal's PSCI is its TF-A's, over SMC; QEMU's xlnx-versal-virt generates its tree \
          without /psci (it adds one only when it loads a kernel itself, with -kernel), so \
          the tree a boot loader hands on from it has none",
}];

/// The quirks of the board whose root `compatible` strings are `compatible`, if it has any
/// (the first string that has an entry wins: the list goes from the most specific).
pub fn lookup<'a>(compatible: impl IntoIterator<Item = &'a str>) -> Option<&'static Quirk> {
    compatible
        .into_iter()
        .find_map(|c| QUIRKS.iter().find(|q| q.compatible == c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versal_virt_has_psci_over_smc_and_others_nothing() {
        let q = lookup(["xlnx-versal-virt"]).expect("an entry");
        assert_eq!(q.psci, Some(PsciConduit::Smc));
        assert!(lookup(["fsl,imx8mp-evk", "fsl,imx8mp"]).is_none());
        // Any of the root's strings may name the board.
        assert!(lookup(["vendor,board-rev2", "xlnx-versal-virt"]).is_some());
        for q in QUIRKS {
            assert!(!q.why.is_empty() && !q.compatible.is_empty());
        }
    }
}
