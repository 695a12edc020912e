//! A virtual machine: its RAM and stage-2 tables, virtual GIC, UART, and vCPU slots.
//!
//! Lock order: the vGIC's internal locks only; the VM's devices live in the VMM partition.

use super::memory::{FreeRam, GuestRam};
use crate::arch::regs::read_sysreg;
use crate::arch::stage2::{Stage2, BLOCK_SIZE};
use crate::vgic::Vgic;
use abi::layout::{MAX_VCPUS, RAM_BASE};
use abi::{GuestPhysAddr, HostPhysAddr, VcpuId, VmId};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use vmm::bundle::Bundle;
use vmm::config::{Source, VmDesc};
use vmm::loader::{self, GuestConfig};

/// A vCPU's power state as PSCI sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Power {
    /// Not running; CPU_ON may start it.
    Off = 0,
    /// CPU_ON accepted; its physical CPU has not picked it up yet.
    OnPending = 1,
    /// Running.
    On = 2,
}

/// What the VM's other vCPUs and the physical CPUs share about one vCPU.
pub struct VcpuSlot {
    power: AtomicU8,
    /// Held off its CPU by the VMM (`VCPU_CTL`).
    paused: AtomicBool,
    /// Entry point for the next start.
    pub entry: AtomicU64,
    /// x0 for the next start.
    pub context: AtomicU64,
    /// That CPU's MPIDR affinity (for kicks).
    pub pcpu_aff: u64,
}

impl VcpuSlot {
    /// The current power state.
    pub fn power(&self) -> Power {
        match self.power.load(Ordering::Acquire) {
            0 => Power::Off,
            1 => Power::OnPending,
            _ => Power::On,
        }
    }

    /// Whether the VMM paused it.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Pauses or resumes it.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
    }

    /// Sets the power state.
    pub fn set_power(&self, p: Power) {
        self.power.store(p as u8, Ordering::Release);
    }

    /// Moves Off -> OnPending with `entry`/`context`; false if it was not Off.
    pub fn request_on(&self, entry: u64, context: u64) -> bool {
        if self
            .power
            .compare_exchange(
                Power::Off as u8,
                Power::OnPending as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            self.entry.store(entry, Ordering::Release);
            self.context.store(context, Ordering::Release);
            true
        } else {
            false
        }
    }
}

/// Posted UART bytes, in order.
#[derive(Default)]
pub struct Posted {
    /// The bytes.
    pub bytes: [u8; abi::vmm::UART_TX_CHUNK],
    /// How many.
    pub len: usize,
}

/// One virtual machine.
pub struct Vm {
    /// Its identifier.
    pub id: VmId,
    /// Its interrupt controller.
    pub vgic: Vgic,
    /// Its RAM.
    pub ram: GuestRam,
    /// Kept alive for the hardware walker.
    _stage2: Stage2,
    /// VTTBR_EL2 value.
    pub vttbr: u64,
    /// VTCR_EL2 value.
    pub vtcr: u64,
    /// CNTVOFF_EL2: the guest's virtual counter starts near 0.
    pub cntvoff: u64,
    /// vCPU slots, index = VcpuId.
    pub vcpus: Vec<VcpuSlot>,
    /// False once the guest powered off or died, and while it is being reset.
    pub alive: AtomicBool,
    /// The VMM's shadow of the guest UART (`abi::vmm::UartShadow` in register form): lets
    /// the exit path answer flag reads and post data writes without an upcall.
    pub uart_shadow: AtomicU64,
    /// Data register writes posted under that shadow, not yet handed to the VMM.
    pub uart_posted: spin::Mutex<Posted>,
    /// Held by the CPU handing posted bytes to the VMM, across the upcall: two CPUs flushing
    /// at once would print their chunks in either order.
    pub uart_flush: spin::Mutex<()>,
    /// A reset was asked for and is not done yet.
    pub resetting: AtomicBool,
    /// What the VM was built from, to rebuild it on reset.
    image: Image,
}

/// What a VM's RAM is loaded from: its description's files, resolved in the boot bundle
/// (which stays in reserved memory).
struct Image {
    vcpus: u32,
    kernel: &'static [u8],
    initrd: Option<&'static [u8]>,
    cmdline: String,
}

impl Image {
    /// `desc`'s kernel and initrd, looked up in `bundle`.
    fn resolve(desc: &VmDesc, bundle: &Bundle<'static>) -> Result<Self, VmError> {
        let file = |what: &'static str, src: &Source| match src {
            Source::Bundle(name) => bundle.file(name).ok_or_else(|| VmError::NoFile {
                what,
                name: name.clone(),
            }),
            Source::Memory { .. } => Err(VmError::MemorySource(what)),
        };
        Ok(Self {
            vcpus: desc.vcpus,
            kernel: file("kernel", &desc.kernel)?,
            initrd: desc
                .initrd
                .as_ref()
                .map(|src| file("initrd", src))
                .transpose()?,
            cmdline: desc.cmdline.clone(),
        })
    }
}

/// Why a VM could not be built.
#[derive(Debug)]
pub enum VmError {
    /// More vCPUs than physical CPUs (vCPUs are pinned until the scheduler exists).
    TooManyVcpus { vcpus: u32, cpus: usize },
    /// Guest RAM size not usable.
    BadMemSize(u64),
    /// Not enough free RAM.
    NoRam(u64),
    /// Stage-2 setup failed.
    Stage2(crate::arch::stage2::Stage2Error),
    /// The loader refused the guest.
    Load(loader::LoadError),
    /// The description names a file the boot bundle does not carry.
    NoFile { what: &'static str, name: String },
    /// The description's kernel or initrd is in host memory, which is not loaded yet.
    MemorySource(&'static str),
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyVcpus { vcpus, cpus } => write!(
                f,
                "{vcpus} vCPUs asked for but the machine has {cpus} CPUs (each vCPU is pinned to its own CPU)"
            ),
            Self::BadMemSize(s) => write!(f, "guest RAM size {s:#x} is zero or not a multiple of 2 MiB"),
            Self::NoRam(s) => write!(f, "no {s:#x} bytes of free RAM left for the guest"),
            Self::Stage2(e) => write!(f, "stage-2 tables: {e:?}"),
            Self::Load(e) => write!(f, "loading the guest: {e}"),
            Self::NoFile { what, name } => {
                write!(f, "the {what} \"{name}\" is not in the boot bundle")
            }
            Self::MemorySource(what) => {
                write!(f, "a {what} in host memory ({{ addr, size }}) is not supported yet")
            }
        }
    }
}

/// Loads kernel, initrd and a generated device tree into `ram`.
fn load(image: &Image, ram: &mut GuestRam) -> Result<loader::BootInfo, VmError> {
    let cfg = GuestConfig {
        vcpus: image.vcpus,
        mem_size: ram.size,
        kernel: image.kernel,
        initrd: image.initrd,
        cmdline: &image.cmdline,
    };
    let boot = loader::load(&cfg, ram).map_err(VmError::Load)?;
    crate::arch::cpu::invalidate_icache();
    Ok(boot)
}

impl Vm {
    /// Builds VM `id` from `desc`, its files in `bundle`: carves its RAM, maps it, loads
    /// kernel, initrd and a generated device tree.
    pub fn build(
        id: VmId,
        desc: &VmDesc,
        bundle: &Bundle<'static>,
        free: &mut FreeRam,
        cpu_affs: &[u64],
    ) -> Result<Self, VmError> {
        let image = Image::resolve(desc, bundle)?;
        let nr = desc.vcpus as usize;
        if nr > cpu_affs.len() || nr > MAX_VCPUS {
            return Err(VmError::TooManyVcpus {
                vcpus: desc.vcpus,
                cpus: cpu_affs.len(),
            });
        }
        let size = desc.mem_size;
        if size == 0 || size % BLOCK_SIZE != 0 {
            return Err(VmError::BadMemSize(size));
        }
        let pa = free.carve(size, BLOCK_SIZE).ok_or(VmError::NoRam(size))?;
        let mut ram = GuestRam {
            ipa: RAM_BASE,
            pa: HostPhysAddr(pa),
            size,
        };
        let mut stage2 = Stage2::new().map_err(VmError::Stage2)?;
        stage2
            .map_ram(RAM_BASE, HostPhysAddr(pa), size)
            .map_err(VmError::Stage2)?;
        let boot = load(&image, &mut ram)?;
        let vmid = id.0 as u8 + 1;
        let vcpus = (0..nr)
            .map(|i| VcpuSlot {
                power: AtomicU8::new(Power::Off as u8),
                paused: AtomicBool::new(false),
                entry: AtomicU64::new(0),
                context: AtomicU64::new(0),
                pcpu_aff: cpu_affs[i],
            })
            .collect::<Vec<_>>();
        vcpus[0].request_on(boot.entry.0, boot.dtb.0);
        log::info!(
            "VM {}: {} vCPUs, {} MiB RAM at host {:#x}, entry {}, device tree {}",
            id.0,
            nr,
            size >> 20,
            pa,
            boot.entry,
            boot.dtb
        );
        Ok(Self {
            id,
            vgic: Vgic::new(nr),
            ram,
            vttbr: stage2.vttbr(vmid),
            vtcr: stage2.vtcr(),
            _stage2: stage2,
            cntvoff: read_sysreg!("cntpct_el0"),
            vcpus,
            alive: AtomicBool::new(true),
            resetting: AtomicBool::new(false),
            uart_shadow: AtomicU64::new(0),
            uart_posted: spin::Mutex::new(Posted::default()),
            uart_flush: spin::Mutex::new(()),
            image,
        })
    }

    /// Puts the VM back in the state `build` left it in: kernel, initrd and device tree
    /// reloaded, interrupt controller reset (the VMM resets the devices on its VmStart request), vCPU 0 about to start. Only while no
    /// vCPU of the VM runs.
    pub fn reload(&self) -> Result<(), VmError> {
        let mut ram = self.ram;
        let boot = load(&self.image, &mut ram)?;
        self.vgic.reset();
        for slot in self.vcpus.iter() {
            slot.set_power(Power::Off);
        }
        self.vcpus[0].request_on(boot.entry.0, boot.dtb.0);
        Ok(())
    }

    /// The slot of `v`, if it exists.
    pub fn vcpu(&self, v: VcpuId) -> Option<&VcpuSlot> {
        self.vcpus.get(v.index())
    }

    /// Whether `ipa` is guest RAM.
    pub fn is_ram(&self, ipa: GuestPhysAddr) -> bool {
        self.ram.contains(ipa)
    }
}
