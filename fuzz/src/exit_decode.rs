//! `exit_decode`: `hypervisor::exit::decode(esr, far, hpfar)` on any syndrome.
//!
//! Invariants: the decoder is total and pure; every variant is reached only from the
//! Exception Class it belongs to; an `Mmio` exit has ISV = 1, a size of 1/2/4/8 bytes, a
//! register 0..=31 and the IPA HPFAR_EL2/FAR_EL2 give; the IPA of an abort is given exactly
//! when HPFAR_EL2 is valid for its fault status; `instruction_len` is 2 or 4 as IL says.
//! The expected values are recomputed here from the Arm ARM's bit positions, independently of
//! the decoder's `register_bitfields!` layouts.

use arbitrary::Unstructured;
use hypervisor::exit::{decode, instruction_len, Exit, FaultStatus};
use hypervisor::sysreg::SysRegAccess;

/// Exception Classes the decoder handles.
const EC_WFX: u64 = 0x01;
const EC_HVC64: u64 = 0x16;
const EC_SMC64: u64 = 0x17;
const EC_SYS64: u64 = 0x18;
const EC_IABT_LOWER: u64 = 0x20;
const EC_DABT_LOWER: u64 = 0x24;
/// The Exception Classes a fuzzer should reach often; others decode to `Unknown`.
const INTERESTING_EC: [u64; 8] = [
    EC_WFX,
    EC_HVC64,
    EC_SMC64,
    EC_SYS64,
    EC_IABT_LOWER,
    EC_DABT_LOWER,
    0x21,
    0x25,
];

fn bit(v: u64, n: u32) -> bool {
    (v >> n) & 1 == 1
}

fn bits(v: u64, lo: u32, width: u32) -> u64 {
    (v >> lo) & ((1 << width) - 1)
}

/// The level a fault status carries, if any; always -1..=3.
fn level(status: FaultStatus) -> Option<i8> {
    match status {
        FaultStatus::AddressSize { level }
        | FaultStatus::Translation { level }
        | FaultStatus::AccessFlag { level }
        | FaultStatus::Permission { level }
        | FaultStatus::SyncExternalOnWalk { level }
        | FaultStatus::SyncParityOnWalk { level } => Some(level),
        _ => None,
    }
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(mut esr), Ok(far), Ok(hpfar), Ok(pick)) = (
        u.arbitrary::<u64>(),
        u.arbitrary::<u64>(),
        u.arbitrary::<u64>(),
        u.arbitrary::<u8>(),
    ) else {
        return;
    };
    // Half the time, force an Exception Class the decoder looks into.
    if pick & 1 == 1 {
        let ec = INTERESTING_EC[usize::from(pick >> 1) % INTERESTING_EC.len()];
        esr = (esr & !(0x3f << 26)) | ec << 26;
    }
    check(esr, far, hpfar);
}

/// Checks one syndrome.
pub fn check(esr: u64, far: u64, hpfar: u64) {
    let exit = decode(esr, far, hpfar);
    assert_eq!(decode(esr, far, hpfar), exit, "decode is not pure");

    let len = instruction_len(esr);
    assert!(len == 2 || len == 4, "instruction_len {len}");
    assert_eq!(len == 4, bit(esr, 25), "instruction_len disagrees with IL");

    let ec = bits(esr, 26, 6);
    let iss = bits(esr, 0, 25);
    // HPFAR_EL2.FIPA is IPA[55:12]; FAR_EL2 gives the page offset.
    let ipa = bits(hpfar, 4, 44) << 12 | bits(far, 0, 12);

    match exit {
        Exit::Mmio(a) => {
            assert_eq!(ec, EC_DABT_LOWER, "{exit:?} from EC {ec:#x}");
            assert!(bit(iss, 24), "Mmio without ISV: {exit:?}");
            assert_eq!(bits(iss, 11, 2), 0, "Mmio with LST != 0 (LD64B/ST64B)");
            assert!(!bit(iss, 7) && !bit(iss, 8), "Mmio on S1PTW or CM");
            assert!(matches!(a.size.bytes(), 1 | 2 | 4 | 8), "size {:?}", a.size);
            assert_eq!(a.size.bytes(), 1 << bits(iss, 22, 2));
            assert!(a.reg <= 31, "reg {}", a.reg);
            assert_eq!(u64::from(a.reg), bits(iss, 16, 5));
            assert_eq!(a.write, bit(iss, 6));
            assert_eq!(a.sign_extend, bit(iss, 21));
            assert_eq!(a.sixty_four, bit(iss, 15));
            assert_eq!(a.ipa.raw(), ipa);
            let status = FaultStatus::from_code(bits(iss, 0, 6) as u8);
            assert!(
                matches!(
                    status,
                    FaultStatus::Translation { .. } | FaultStatus::AccessFlag { .. }
                ),
                "Mmio from {status:?}"
            );
        }
        Exit::DataAbortNoSyndrome {
            ipa: i,
            far: f,
            write,
        } => {
            assert_eq!(ec, EC_DABT_LOWER);
            assert_eq!((i.raw(), f, write), (ipa, far, bit(iss, 6)));
        }
        Exit::CacheMaintenance { ipa: i, far: f } => {
            assert_eq!(ec, EC_DABT_LOWER);
            assert!(bit(iss, 8), "CacheMaintenance without CM");
            assert_eq!((i.raw(), f), (ipa, far));
        }
        Exit::StageTwoFetch { ipa: i, far: f } => {
            assert_eq!(ec, EC_IABT_LOWER);
            assert_eq!((i.raw(), f), (ipa, far));
        }
        Exit::PermissionFault {
            far: f,
            write,
            fetch,
            access,
        } => {
            assert!(ec == EC_DABT_LOWER || ec == EC_IABT_LOWER);
            assert_eq!(fetch, ec == EC_IABT_LOWER);
            assert_eq!(f, far);
            if fetch {
                assert!(
                    !write && access.is_none(),
                    "a fetch with a data access: {exit:?}"
                );
            } else {
                assert_eq!(write, bit(iss, 6));
                assert_eq!(access.is_some(), bit(iss, 24) && bits(iss, 11, 2) == 0);
            }
            if let Some(a) = access {
                assert!(matches!(a.size.bytes(), 1 | 2 | 4 | 8));
                assert!(a.reg <= 31);
            }
        }
        Exit::Abort(a) => {
            assert!(ec == EC_DABT_LOWER || ec == EC_IABT_LOWER);
            assert_eq!(a.fetch, ec == EC_IABT_LOWER);
            if a.fetch {
                assert!(!a.write);
            }
            assert_eq!(a.s1ptw, bit(iss, 7));
            assert_eq!(a.status, FaultStatus::from_code(bits(iss, 0, 6) as u8));
            if let Some(l) = level(a.status) {
                assert!((-1..=3).contains(&l), "level {l}");
            }
            assert_eq!(a.ipa.is_some(), a.status.hpfar_valid(a.s1ptw));
            if let Some(i) = a.ipa {
                assert_eq!(i.raw(), ipa);
            }
            match a.far {
                Some(f) => assert_eq!(f, far),
                None => assert!(
                    a.status == FaultStatus::SyncExternal && bit(iss, 10),
                    "FAR dropped without FnV on a synchronous external abort: {exit:?}"
                ),
            }
        }
        Exit::Hvc { imm } => {
            assert_eq!(ec, EC_HVC64);
            assert_eq!(u64::from(imm), bits(iss, 0, 16));
        }
        Exit::Smc { imm } => {
            assert_eq!(ec, EC_SMC64);
            assert_eq!(u64::from(imm), bits(iss, 0, 16));
        }
        Exit::Wfi => assert!(ec == EC_WFX && bits(iss, 0, 2) == 0),
        Exit::Wfe => assert!(ec == EC_WFX && bits(iss, 0, 2) != 0),
        Exit::SysReg(s) => {
            assert_eq!(ec, EC_SYS64);
            assert_eq!(s, SysRegAccess::from_iss(iss));
            assert!(s.rt <= 31);
        }
        Exit::Unknown { ec: e, iss: i, il } => {
            assert_eq!(u64::from(e), ec);
            assert_eq!(u64::from(i), iss);
            assert_eq!(il, bit(esr, 25));
            assert!(
                ![
                    EC_WFX,
                    EC_HVC64,
                    EC_SMC64,
                    EC_SYS64,
                    EC_IABT_LOWER,
                    EC_DABT_LOWER
                ]
                .contains(&ec),
                "EC {ec:#x} decoded as Unknown"
            );
        }
    }
}
