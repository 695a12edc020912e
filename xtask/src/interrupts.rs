//! Reading a guest's `/proc/interrupts` as printed on its console.
//!
//! The format (Linux fs/proc/interrupts.c, arch/arm64/kernel/smp.c): a header of `CPUn` column
//! names, then one line per interrupt: `label:`, one count per CPU, then the chip, hwirq, trigger
//! and name; architecture lines (`IPI0:` ...) have the counts and a description.

/// One `/proc/interrupts` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Number of CPU columns in the header.
    pub cpus: usize,
    /// Each interrupt line: label (without ':'), per-CPU counts, the rest of the line.
    pub rows: Vec<Row>,
}

/// One interrupt line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `11`, `IPI0`, ...
    pub label: String,
    /// One count per CPU column.
    pub counts: Vec<u64>,
    /// What follows the counts (chip, hwirq, trigger, name; or an IPI's description).
    pub desc: String,
}

/// Why a table could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// No `CPU0 CPU1 ...` header line.
    NoHeader,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoHeader => write!(f, "no `CPU0 ...` header line"),
        }
    }
}

impl Table {
    /// Parses the lines of one dump. Lines that are not interrupt lines (a kernel message that
    /// landed in the middle, `Err:` with a single count) are skipped.
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<Self, ParseError> {
        let mut lines = lines.into_iter();
        let cpus = lines
            .by_ref()
            .find_map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let is_header = !words.is_empty()
                    && words.iter().all(|w| {
                        w.strip_prefix("CPU")
                            .is_some_and(|n| n.parse::<u32>().is_ok())
                    });
                is_header.then_some(words.len())
            })
            .ok_or(ParseError::NoHeader)?;
        let rows = lines.filter_map(|l| Row::parse(l, cpus)).collect();
        Ok(Self { cpus, rows })
    }

    /// Per-CPU sums over the rows `select` picks.
    pub fn per_cpu(&self, select: impl Fn(&Row) -> bool) -> Vec<u64> {
        let mut sums = vec![0; self.cpus];
        for r in self.rows.iter().filter(|r| select(r)) {
            for (s, c) in sums.iter_mut().zip(&r.counts) {
                *s += c;
            }
        }
        sums
    }

    /// Whether any row `select` picks exists.
    pub fn has(&self, select: impl Fn(&Row) -> bool) -> bool {
        self.rows.iter().any(select)
    }
}

impl Row {
    fn parse(line: &str, cpus: usize) -> Option<Self> {
        let mut words = line.split_whitespace();
        let label = words.next()?.strip_suffix(':')?;
        let counts: Vec<u64> = words
            .by_ref()
            .take(cpus)
            .map(|w| w.parse().ok())
            .collect::<Option<_>>()?;
        if counts.len() != cpus {
            return None;
        }
        Some(Self {
            label: label.to_string(),
            counts,
            desc: words.collect::<Vec<_>>().join(" "),
        })
    }

    /// The per-CPU architected timer (its name is the last field: `... Level arch_timer`).
    pub fn is_arch_timer(&self) -> bool {
        self.desc.split_whitespace().last() == Some("arch_timer")
    }

    /// An inter-processor interrupt line (`IPI0:` Rescheduling, `IPI1:` Function call, ...).
    pub fn is_ipi(&self) -> bool {
        self.label
            .strip_prefix("IPI")
            .is_some_and(|n| n.parse::<u32>().is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from Debian's 6.1.0-56-cloud-arm64 kernel straight under QEMU virt, -smp 2
    /// (build/logs/linux-smp-2.log, timestamps removed; trailing spaces as the kernel prints).
    pub const DUMP_SMP2: &str = "           CPU0       CPU1       \n\
 11:       1092       1009     GICv3  27 Level     arch_timer
 13:          0          0     GICv3  33 Level     uart-pl011
 14:          0          0     GICv3  23 Level     arm-pmu
 16:          0          0     GICv3  34 Level     rtc-pl031
IPI0:        13         34       Rescheduling interrupts
IPI1:       297        229       Function call interrupts
IPI2:         0          0       CPU stop interrupts
IPI3:         0          0       CPU stop (for crash dump) interrupts
IPI4:         0          0       Timer broadcast interrupts
IPI5:         0          0       IRQ work interrupts
IPI6:         0          0       CPU wake-up interrupts
Err:          0
";

    #[test]
    fn parses_a_two_cpu_dump() {
        let t = Table::parse(DUMP_SMP2.lines()).unwrap();
        assert_eq!(t.cpus, 2);
        assert_eq!(t.rows.len(), 11, "Err: has one count and is skipped");
        assert_eq!(t.per_cpu(Row::is_arch_timer), [1092, 1009]);
        assert_eq!(t.per_cpu(Row::is_ipi), [310, 263]);
        assert_eq!(t.rows[1].desc, "GICv3 33 Level uart-pl011");
    }

    #[test]
    fn stray_console_lines_are_skipped() {
        let text = "[   12.3] random: crng init done\n           CPU0\n 11:  5  GICv3  27 Level  arch_timer\n[  12.4] foo: 1 2\nIPI0: 7 Rescheduling interrupts\n";
        let t = Table::parse(text.lines()).unwrap();
        assert_eq!(t.cpus, 1);
        assert_eq!(t.per_cpu(Row::is_arch_timer), [5]);
        assert_eq!(t.per_cpu(Row::is_ipi), [7]);
    }

    #[test]
    fn no_header_is_an_error() {
        assert_eq!(
            Table::parse(" 11: 1 2 GICv3 arch_timer".lines()),
            Err(ParseError::NoHeader)
        );
    }

    #[test]
    fn a_line_with_fewer_counts_than_cpus_is_not_a_row() {
        let t =
            Table::parse("  CPU0 CPU1 CPU2\n 11: 1 2 GICv3 27 Level arch_timer\n".lines()).unwrap();
        assert!(!t.has(Row::is_arch_timer));
    }
}
