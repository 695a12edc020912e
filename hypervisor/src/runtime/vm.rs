//! A virtual machine: its RAM and stage-2 tables, virtual GIC, console state, and vCPU
//! slots.
//!
//! Lock order: a vCPU's context lock -> the vGIC's internal locks; the VM's devices live in
//! the VMM partition.

use super::memory::{FreeRam, GuestRam};
use super::stats::{Counter, VcpuStats};
use crate::arch::context::CpuContext;
use crate::arch::exception::GuestRegs;
use crate::arch::stage2::{Stage2, BLOCK_SIZE};
use crate::vgic::Vgic;
use abi::layout::{FLASH_BANKS, FLASH_BANK_SIZE, FLASH_BASE, MAX_VCPUS, RAM_BASE};
use abi::vmm::{DeviceSet, DiskSlice, Mac};
use abi::{GuestPhysAddr, HostPhysAddr, VcpuId, VmId};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use vmboot::loader::{self, BootInfo, GuestConfig};

/// What a VM is built from: its description, with kernel and initrd found.
#[derive(Clone, Debug)]
pub struct VmSpec {
    /// Its name, for the console and the monitor.
    pub name: String,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Guest RAM size in bytes.
    pub mem_size: u64,
    /// The kernel (in memory that stays reserved for ever); empty when the VM boots firmware.
    pub kernel: &'static [u8],
    /// The firmware it runs from its flash at address 0 instead of a kernel, if any.
    pub firmware: Option<&'static [u8]>,
    /// The initrd, if any.
    pub initrd: Option<&'static [u8]>,
    /// The kernel command line.
    pub cmdline: String,
    /// Whether the VMM partition serves it (its UART and other devices); a VM it does not
    /// serve has no device but the GIC and the timer.
    pub served: bool,
    /// Start at boot; otherwise the monitor starts it.
    pub autostart: bool,
    /// Its devices: described in its device tree, created by the VMM (none if not served).
    pub devices: DeviceSet,
    /// The part of the machine's disk its virtio-blk is.
    pub disk: DiskSlice,
    /// Where the VMM keeps its variable flash on the machine's disk, if anywhere.
    pub vars: Option<DiskSlice>,
    /// Its virtio-net's address, if its description gives one.
    pub mac: Option<Mac>,
}

pub use hypervisor::sched_policy::Power;

/// A vCPU's state while it is off its physical CPU (only that CPU touches it).
#[derive(Default)]
pub struct VcpuState {
    /// General registers, PC and PSTATE.
    pub regs: GuestRegs,
    /// Everything else the CPU holds for it.
    pub cpu: CpuContext,
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
    /// The physical CPU that runs it (index in the tree's CPU list).
    pub pcpu: usize,
    /// That CPU's MPIDR affinity (for kicks).
    pub pcpu_aff: u64,
    /// Waiting in WFI off its CPU: runnable again on an interrupt or at `deadline`.
    pub blocked: AtomicBool,
    /// Physical counter value at which its timer fires (u64::MAX: never), while blocked.
    pub deadline: AtomicU64,
    /// Its saved state while another vCPU has its CPU.
    pub state: spin::Mutex<VcpuState>,
    /// Exits by reason.
    pub stats: VcpuStats,
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

    /// Counts one exit of this vCPU.
    #[inline]
    pub fn count(&self, c: Counter) {
        self.stats.count(c);
    }

    /// Moves Off -> OnPending with `entry`/`context`; false if it was not Off.
    ///
    /// The entry is stored before OnPending is published: the vCPU's CPU may pick it up the
    /// moment it is OnPending, and reads the entry then. Two callers racing to start the same
    /// vCPU (only a guest's own CPU_ONs can) may leave either's entry; one of them is told no.
    pub fn request_on(&self, entry: u64, context: u64) -> bool {
        if self.power() != Power::Off {
            return false;
        }
        self.entry.store(entry, Ordering::Release);
        self.context.store(context, Ordering::Release);
        self.power
            .compare_exchange(
                Power::Off as u8,
                Power::OnPending as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
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
    /// Its identifier (its index in the VM table).
    pub id: VmId,
    /// What it was built from (to rebuild it on reset).
    pub spec: VmSpec,
    /// Some physical CPU of it also runs other vCPUs: its full CPU state is switched, and SVE
    /// and SME (whose state is not) are hidden from it.
    pub shared: bool,
    /// Its interrupt controller.
    pub vgic: Vgic,
    /// Its RAM.
    pub ram: GuestRam,
    /// Its flash banks, if it boots firmware.
    pub flash: Option<Flash>,
    /// Its stage-2 tables: read by the hardware walker, changed only for the flash.
    stage2: spin::Mutex<Stage2>,
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
    /// A reset (or a start) was asked for and is not done yet.
    pub resetting: AtomicBool,
    /// Has run since boot (a VM with `autostart` off has not until the monitor starts it).
    pub started: AtomicBool,
}

/// A firmware VM's flash: QEMU virt's two banks, in host RAM carved with the VM's RAM.
///
/// Bank 1 (the variables, 64 MiB) lies right after the RAM, so the VMM partition reaches it
/// through its window on the VM at the RAM's size, and its CFI model programs and erases it
/// there. Bank 0 (the firmware, write-protected) follows, as much of it as the firmware
/// needs in 2 MiB blocks; the rest of bank 0 is never mapped and reads through the model as
/// zeros. A bank in read-array mode is mapped read-only, so reads and fetches cost no exit
/// and writes fault to the model; in any other mode it is unmapped, so its reads reach the
/// model too (status, identifier, CFI query).
pub struct Flash {
    /// Host address of each bank's backing.
    pa: [HostPhysAddr; FLASH_BANKS as usize],
    /// Bytes of each bank that are backed (and mapped in read-array mode).
    len: [u64; FLASH_BANKS as usize],
    /// Whether each bank is mapped now, changed with the stage-2 lock held.
    mapped: spin::Mutex<[bool; FLASH_BANKS as usize]>,
}

impl Flash {
    /// The guest-physical base of bank `b`.
    fn base(b: usize) -> GuestPhysAddr {
        GuestPhysAddr(FLASH_BASE.0 + b as u64 * FLASH_BANK_SIZE)
    }

    /// Copies `firmware` to the start of bank 0's backing, zeroes the rest of it.
    fn load_firmware(&self, firmware: &[u8]) {
        let len = self.len[0] as usize;
        let n = firmware.len().min(len);
        // SAFETY: bank 0's backing is `len` bytes of host RAM carved for this VM alone, and
        // no vCPU of it runs (it is being built or reset); `n` <= `len`.
        unsafe {
            let dst = self.pa[0].0 as *mut u8;
            core::ptr::copy_nonoverlapping(firmware.as_ptr(), dst, n);
            core::ptr::write_bytes(dst.add(n), 0, len - n);
        }
    }
}

/// Why a VM could not be built.
#[derive(Debug)]
pub enum VmError {
    /// More vCPUs than a VM may have.
    TooManyVcpus { vcpus: u32 },

    /// Guest RAM size not usable.
    BadMemSize(u64),
    /// Not enough free RAM.
    NoRam(u64),
    /// Stage-2 setup failed.
    Stage2(crate::arch::stage2::Stage2Error),
    /// The loader refused the guest.
    Load(loader::LoadError),
    /// The firmware is empty or larger than a flash bank.
    FirmwareSize(u64),
    /// The VM's RAM and its variable flash do not fit the VMM partition's window on it.
    FirmwareMemory(u64),
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyVcpus { vcpus } => {
                write!(f, "{vcpus} vCPUs asked for; a VM has 1 to {MAX_VCPUS}")
            }

            Self::BadMemSize(s) => write!(
                f,
                "guest RAM size {s:#x} is zero or not a multiple of 2 MiB"
            ),
            Self::NoRam(s) => write!(f, "no {s:#x} bytes of free RAM left for the guest"),
            Self::Stage2(e) => write!(f, "stage-2 tables: {e:?}"),
            Self::Load(e) => write!(f, "loading the guest: {e}"),
            Self::FirmwareSize(n) => write!(
                f,
                "the firmware is {n:#x} bytes: it must be 1 byte to {FLASH_BANK_SIZE:#x} (a flash bank)"
            ),
            Self::FirmwareMemory(s) => write!(
                f,
                "guest RAM of {s:#x} bytes leaves no room for the variable flash in the VMM's {:#x}-byte window: give it less",
                abi::vmm::GUEST_WINDOW_SIZE
            ),
        }
    }
}

/// Loads kernel, initrd and a generated device tree into `ram`; for a VM that boots
/// firmware, only the tree (the firmware is in its flash).
fn load(spec: &VmSpec, ram: &mut GuestRam) -> Result<BootInfo, VmError> {
    let machine = loader::MachineOptions {
        devices: spec.devices,
        ..Default::default()
    };
    if let Some(fw) = spec.firmware {
        return loader::load_firmware(spec.vcpus, ram.size, fw.len() as u64, &machine, ram)
            .map_err(VmError::Load);
    }
    let cfg = GuestConfig {
        vcpus: spec.vcpus,
        mem_size: ram.size,
        kernel: spec.kernel,
        initrd: spec.initrd,
        cmdline: &spec.cmdline,
    };
    let boot = loader::load_with(&cfg, &machine, ram).map_err(VmError::Load)?;
    crate::arch::cpu::invalidate_icache();
    Ok(boot)
}

impl Vm {
    /// Builds VM `id` from `spec`: carves its RAM, maps it, loads kernel, initrd and a
    /// generated device tree. vCPU i runs on physical CPU `placement[i]` (whose affinity
    /// `cpu_affs` gives); `shared` says whether one of those CPUs runs other vCPUs too.
    pub fn build(
        id: VmId,
        spec: VmSpec,
        free: &mut FreeRam,
        placement: &[usize],
        cpu_affs: &[u64],
        shared: bool,
    ) -> Result<Self, VmError> {
        let nr = spec.vcpus as usize;
        if nr == 0 || nr > MAX_VCPUS || placement.len() != nr {
            return Err(VmError::TooManyVcpus { vcpus: spec.vcpus });
        }
        let size = spec.mem_size;
        if size == 0 || !size.is_multiple_of(BLOCK_SIZE) {
            return Err(VmError::BadMemSize(size));
        }
        // A firmware VM's flash: bank 1 whole, bank 0 as far as the firmware reaches.
        let flash_len = match spec.firmware {
            None => None,
            Some(fw) => {
                let n = fw.len() as u64;
                if n == 0 || n > FLASH_BANK_SIZE {
                    return Err(VmError::FirmwareSize(n));
                }
                if size + FLASH_BANK_SIZE > abi::vmm::GUEST_WINDOW_SIZE {
                    return Err(VmError::FirmwareMemory(size));
                }
                Some([n.next_multiple_of(BLOCK_SIZE), FLASH_BANK_SIZE])
            }
        };
        let total = size + flash_len.map_or(0, |l| l[0] + l[1]);
        let pa = free.carve(total, BLOCK_SIZE).ok_or(VmError::NoRam(total))?;
        let mut ram = GuestRam {
            ipa: RAM_BASE,
            pa: HostPhysAddr(pa),
            size,
        };
        let mut stage2 = Stage2::new().map_err(VmError::Stage2)?;
        stage2
            .map_ram(RAM_BASE, HostPhysAddr(pa), size)
            .map_err(VmError::Stage2)?;
        let flash = flash_len.map(|len| Flash {
            pa: [HostPhysAddr(pa + size + len[1]), HostPhysAddr(pa + size)],
            len,
            mapped: spin::Mutex::new([true; FLASH_BANKS as usize]),
        });
        if let (Some(f), Some(fw)) = (&flash, spec.firmware) {
            f.load_firmware(fw);
            // A new part is erased: every bit set.
            // SAFETY: bank 1's backing is host RAM carved for this VM alone, not yet running.
            unsafe { core::ptr::write_bytes(f.pa[1].0 as *mut u8, 0xff, f.len[1] as usize) };
            for b in 0..FLASH_BANKS as usize {
                stage2
                    .map_rom(Flash::base(b), f.pa[b], f.len[b])
                    .map_err(VmError::Stage2)?;
            }
        }
        let boot = load(&spec, &mut ram)?;
        let vmid = id.0 as u8 + 1;
        let vcpus = placement
            .iter()
            .map(|&pcpu| VcpuSlot {
                power: AtomicU8::new(Power::Off as u8),
                paused: AtomicBool::new(false),
                entry: AtomicU64::new(0),
                context: AtomicU64::new(0),
                pcpu,
                pcpu_aff: cpu_affs[pcpu],
                blocked: AtomicBool::new(false),
                deadline: AtomicU64::new(u64::MAX),
                state: spin::Mutex::new(VcpuState::default()),
                stats: VcpuStats::default(),
            })
            .collect::<Vec<_>>();
        if spec.autostart {
            vcpus[0].request_on(boot.entry.0, boot.x0);
        }
        log::info!(
            "VM {} \"{}\": {} vCPUs on CPUs {:?}, {} MiB RAM at host {:#x}, entry {}, device tree {}{}",
            id.0,
            spec.name,
            nr,
            placement,
            size >> 20,
            pa,
            boot.entry,
            boot.dtb,
            if spec.autostart { "" } else { " (not started: the monitor starts it)" }
        );
        Ok(Self {
            id,
            vgic: Vgic::new(nr),
            ram,
            flash,
            vttbr: stage2.vttbr(vmid),
            vtcr: stage2.vtcr(),
            stage2: spin::Mutex::new(stage2),
            cntvoff: crate::arch::timer::now(),
            vcpus,
            alive: AtomicBool::new(spec.autostart),
            resetting: AtomicBool::new(false),
            started: AtomicBool::new(spec.autostart),
            uart_shadow: AtomicU64::new(0),
            uart_posted: spin::Mutex::new(Posted::default()),
            uart_flush: spin::Mutex::new(()),
            spec,
            shared,
        })
    }

    /// Puts the VM back in the state `build` left it in: kernel, initrd and device tree
    /// reloaded, interrupt controller reset (the VMM resets the devices on its VmStart
    /// request), every vCPU off. Only while no vCPU of the VM runs. The VM starts when
    /// [`Self::start_boot_vcpu`] is given what this returns, once it is alive again: a vCPU
    /// about to start in a VM that is not alive is turned off by its CPU.
    pub fn reload(&self) -> Result<BootInfo, VmError> {
        let mut ram = self.ram;
        let boot = load(&self.spec, &mut ram)?;
        // The flash comes back in read-array mode (the VMM resets its models on VmStart); the
        // variables in bank 1 stay, as a machine's flash keeps them over a reset.
        self.set_flash_array([true; FLASH_BANKS as usize]);
        self.vgic.reset();
        for slot in self.vcpus.iter() {
            slot.set_power(Power::Off);
        }
        Ok(boot)
    }

    /// Starts vCPU 0 at the entry with x0 as `boot` says (the kernel with its device tree,
    /// or the firmware at 0 with x0 = 0).
    pub fn start_boot_vcpu(&self, boot: &BootInfo) {
        self.vcpus[0].request_on(boot.entry.0, boot.x0);
    }

    /// How much of the VM's host memory the VMM partition's window on it shows: its RAM, and
    /// its variable flash (bank 1) right after.
    pub fn vmm_window_size(&self) -> u64 {
        self.ram.size + self.flash.as_ref().map_or(0, |f| f.len[1])
    }

    /// Maps each flash bank that reads as its array (read-only, so reads cost no exit) and
    /// unmaps each that does not (so its reads reach the VMM's model), as the VMM said after
    /// a flash access. Unmapping invalidates the VM's TLB entries on every CPU: called by a
    /// vCPU of this VM (whose VTTBR_EL2 is loaded) or while none of its vCPUs runs.
    pub fn set_flash_array(&self, array: [bool; FLASH_BANKS as usize]) {
        let Some(f) = &self.flash else { return };
        let mut mapped = f.mapped.lock();
        let mut stage2 = self.stage2.lock();
        let mut unmapped = false;
        for (b, want) in array.into_iter().enumerate() {
            if mapped[b] == want {
                continue;
            }
            let done = if want {
                stage2.map_rom(Flash::base(b), f.pa[b], f.len[b])
            } else {
                unmapped = true;
                stage2.unmap_blocks(Flash::base(b), f.len[b])
            };
            match done {
                Ok(()) => mapped[b] = want,
                // Aligned ranges the VM was built with: cannot fail short of a bug.
                Err(e) => log::error!("VM {}: flash bank {b}: stage 2: {e:?}", self.id.0),
            }
        }
        if unmapped {
            crate::arch::tlb::flush_guest_all();
        }
    }

    /// Whether `ipa` is in a flash bank this VM has.
    pub fn is_flash(&self, ipa: GuestPhysAddr) -> bool {
        self.flash.is_some() && abi::layout::flash_bank(ipa).is_some()
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
