//! Reading what each VM printed when several share the console.
//!
//! With several VMs each guest line arrives as `[name] text` (a continuation of a line other
//! output broke as `[name]+ text`): [`vm_lines`] puts a VM's own text back together.

use crate::qemu::Capture;

/// The lines VM `name` printed, each whole again, in order.
pub fn vm_lines(console: &Capture, name: &str) -> Vec<String> {
    vm_lines_at(console, name)
        .into_iter()
        .map(|(_, l)| l)
        .collect()
}

/// The lines VM `name` printed, each whole again, in order, with the index in
/// `console.lines` of the console line each starts on.
pub fn vm_lines_at(console: &Capture, name: &str) -> Vec<(usize, String)> {
    let start = format!("[{name}] ");
    let cont = format!("[{name}]+ ");
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, l) in console.lines.iter().enumerate() {
        if let Some(rest) = l.text.strip_prefix(&start) {
            out.push((i, rest.to_string()));
        } else if let Some(rest) = l.text.strip_prefix(&cont) {
            match out.last_mut() {
                Some((_, last)) => last.push_str(rest),
                None => out.push((i, rest.to_string())),
            }
        }
    }
    out
}

/// The value after `marker` on the first of `lines` that has it.
fn value_after(lines: &[String], marker: &str) -> Option<String> {
    lines
        .iter()
        .find_map(|l| l.split_once(marker).map(|(_, v)| v.trim().to_string()))
}

/// MemTotal in kB from a `RHYVE-MEMTOTAL MemTotal: N kB` line.
fn mem_total_kb(lines: &[String]) -> Option<u64> {
    value_after(lines, "RHYVE-MEMTOTAL MemTotal:")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Checks the CPU count a Linux VM's test init reports and that its MemTotal fits its RAM
/// (the kernel keeps some); each reason it fails goes to `f`.
pub fn check_shape(lines: &[String], name: &str, vcpus: u32, mem_mib: u64, f: &mut Vec<String>) {
    match value_after(lines, "RHYVE-NPROC") {
        Some(n) if n == vcpus.to_string() => {}
        Some(n) => f.push(format!("VM {name}: {n} CPUs, expected {vcpus}")),
        None => f.push(format!(
            "VM {name}: no RHYVE-NPROC line: its init did not run"
        )),
    }
    match mem_total_kb(lines) {
        Some(kb) if kb <= mem_mib * 1024 && kb >= mem_mib * 1024 * 6 / 10 => {}
        Some(kb) => f.push(format!(
            "VM {name}: MemTotal {kb} kB does not fit its {mem_mib} MiB"
        )),
        None => f.push(format!("VM {name}: no RHYVE-MEMTOTAL line")),
    }
}
