//! Where each vCPU runs: placed once, when its VM is built, on the least loaded of the
//! physical CPUs its description allows (the lowest-numbered on a tie), and never moved.
//!
//! Placing VMs in order this way pins vCPUs one-to-one while there are CPUs enough, spreads a
//! VM's vCPUs over the CPUs it may use, and shares CPUs evenly once there are more vCPUs.

use alloc::vec::Vec;

/// Most CPUs a mask can name.
pub const MASK_BITS: usize = u64::BITS as usize;

/// Places `vcpus` vCPUs on the CPUs of `mask` (all CPUs when `None`) among the first
/// `nr_cpus`, counting each in `load` (vCPUs already placed per CPU). `None` when the mask
/// names no CPU the machine has; `load` is then unchanged.
pub fn place(
    vcpus: u32,
    mask: Option<u64>,
    nr_cpus: usize,
    load: &mut [usize],
) -> Option<Vec<usize>> {
    let n = nr_cpus.min(MASK_BITS).min(load.len());
    let allowed = |c: usize| mask.is_none_or(|m| m & (1 << c) != 0);
    if !(0..n).any(allowed) {
        return None;
    }
    let mut out = Vec::new();
    for _ in 0..vcpus {
        let c = (0..n)
            .filter(|&c| allowed(c))
            .min_by_key(|&c| (load[c], c))?;
        load[c] += 1;
        out.push(c);
    }
    Some(out)
}

/// Whether some CPU of `placement` runs more than one vCPU, given the final `load`.
pub fn shares_a_cpu(placement: &[usize], load: &[usize]) -> bool {
    placement
        .iter()
        .any(|&c| load.get(c).is_some_and(|&l| l > 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_to_one_while_cpus_last_then_shared_evenly() {
        let mut load = [0; 8];
        assert_eq!(place(2, None, 4, &mut load), Some(vec![0, 1]));
        assert_eq!(place(2, None, 4, &mut load), Some(vec![2, 3]));
        assert_eq!(place(3, None, 4, &mut load), Some(vec![0, 1, 2]));
        assert_eq!(&load[..4], &[2, 2, 2, 1]);
    }

    #[test]
    fn a_mask_restricts_and_more_vcpus_than_cpus_wrap() {
        let mut load = [0; 8];
        assert_eq!(place(4, Some(0b11), 2, &mut load), Some(vec![0, 1, 0, 1]));
        assert_eq!(place(1, Some(0b10), 2, &mut load), Some(vec![1]));
        assert!(shares_a_cpu(&[1], &load));
    }

    #[test]
    fn a_mask_naming_no_cpu_of_the_machine_is_refused_and_counts_nothing() {
        let mut load = [0; 8];
        assert_eq!(place(1, Some(1 << 5), 4, &mut load), None);
        assert_eq!(place(1, Some(0), 4, &mut load), None);
        assert_eq!(load, [0; 8]);
    }

    #[test]
    fn alone_on_its_cpus_is_not_shared() {
        let mut load = [0; 8];
        let a = place(2, Some(0b011), 4, &mut load).unwrap();
        let b = place(1, Some(0b100), 4, &mut load).unwrap();
        assert!(!shares_a_cpu(&a, &load));
        assert!(!shares_a_cpu(&b, &load));
    }
}
