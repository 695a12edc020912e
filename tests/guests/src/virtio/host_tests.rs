//! The virtio guest's cases run on the host against rhyve's own device models (`vmm::virtio`)
//! over a simulated guest RAM, laid out as the scenario lays out the VM: every case must pass
//! here before it runs under rhyve, and the disk outside the VM's slice must stay untouched.

use super::cases::{
    self, CARD_MAC, DISK_MARKER, HVC0_LINE, PORT1_LEAK, SLICE_SECTORS, WRITE_MARKER,
};
use super::Machine;
use abi::layout::RAM_BASE;
use abi::GuestPhysAddr;
use std::cell::RefCell;
use std::rc::Rc;
use std::string::String;
use std::vec::Vec;
use vmboot::memory::{GuestMemory, VecMemory};
use vmm::virtio::blk::{LbaRange, MemDisk, VirtioBlk};
use vmm::virtio::console::{ConsoleBackend, VirtioConsole};
use vmm::virtio::mmio::MmioSlot;
use vmm::virtio::net::{MacAddr, NetBackend, NetError, VirtioNet, MAX_QUEUE_PAIRS};
use vmm::virtio::rng::{EntropyError, EntropySource, VirtioRng};
use vmm::virtio::MmioTransport;

/// The test guests' RAM size (`tg::rt::RAM_SIZE`, which is bare-metal only).
const RAM_SIZE: u64 = 32 << 20;
/// Where the slice starts on the machine's disk, in sectors, and the disk's size.
const SLICE_START: u64 = 2048;
const DISK_SECTORS: usize = 8192;
/// What the machine's disk holds outside the slice.
const OUTSIDE: u8 = 0x77;

/// Console output, shared with the test.
#[derive(Clone, Default)]
struct Out(Rc<RefCell<Vec<u8>>>);

impl ConsoleBackend for Out {
    fn output(&mut self, bytes: &[u8]) {
        self.0.borrow_mut().extend_from_slice(bytes);
    }
}

#[derive(Default)]
struct Wire(Vec<Vec<u8>>);

impl NetBackend for Wire {
    fn send(&mut self, frame: &[u8]) -> Result<(), NetError> {
        self.0.push(frame.to_vec());
        Ok(())
    }
}

/// A test source (xorshift): the real VMM's sources are RNDR and the machine's virtio-rng.
struct XorShift(u64);

impl EntropySource for XorShift {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
        Ok(())
    }
}

type Disk = LbaRange<Rc<RefCell<MemDisk>>>;

/// The VM's four devices at their slots, and its RAM.
struct Host {
    mem: VecMemory,
    console: MmioTransport<VirtioConsole<Out>>,
    blk: MmioTransport<VirtioBlk<Disk>>,
    net: MmioTransport<VirtioNet<Wire>>,
    rng: MmioTransport<VirtioRng<XorShift>>,
    scratch: (u64, u64),
}

impl Host {
    fn new(disk: Rc<RefCell<MemDisk>>, hvc0: Out, port1: Out) -> Self {
        let slice = LbaRange::new(disk, SLICE_START, SLICE_SECTORS, false).expect("fits");
        Self {
            mem: VecMemory::new(RAM_BASE, RAM_SIZE as usize),
            console: MmioTransport::new(VirtioConsole::new(hvc0, port1, "rhyve.port1")),
            blk: MmioTransport::new(VirtioBlk::new(slice.with_id(b"rhyve-vm0"))),
            // As the VMM makes it.
            net: MmioTransport::new(VirtioNet::with_queue_pairs(
                Wire::default(),
                MacAddr(CARD_MAC),
                MAX_QUEUE_PAIRS,
            )),
            rng: MmioTransport::new(VirtioRng::new(XorShift(0x2545_f491_4f6c_dd1d))),
            // As the bare-metal guest: above its image, up to the end of RAM.
            scratch: (RAM_BASE.0 + (1 << 20), RAM_BASE.0 + RAM_SIZE),
        }
    }

    /// The device at `slot`, and the RAM beside it.
    fn slot(&mut self, slot: u32) -> (&mut dyn MmioSlot, &mut VecMemory) {
        let dev: &mut dyn MmioSlot = match slot {
            0 => &mut self.console,
            1 => &mut self.blk,
            2 => &mut self.net,
            3 => &mut self.rng,
            _ => panic!("no device at slot {slot}: the VMM would answer with an abort"),
        };
        (dev, &mut self.mem)
    }
}

impl Machine for Host {
    fn read32(&mut self, slot: u32, off: u64) -> u32 {
        self.slot(slot).0.read(off, 4) as u32
    }

    fn write32(&mut self, slot: u32, off: u64, value: u32) {
        let (dev, mem) = self.slot(slot);
        dev.write(off, 4, u64::from(value), mem);
    }

    fn read_config64(&mut self, slot: u32, off: u64) -> u64 {
        self.slot(slot).0.read(super::spec::offset::CONFIG + off, 8)
    }

    fn write_mem(&mut self, addr: u64, data: &[u8]) {
        self.mem
            .write(GuestPhysAddr(addr), data)
            .expect("scratch RAM");
    }

    fn read_mem(&mut self, addr: u64, buf: &mut [u8]) {
        self.mem
            .read(GuestPhysAddr(addr), buf)
            .expect("scratch RAM");
    }

    fn scratch(&self) -> (u64, u64) {
        self.scratch
    }

    fn ram_end(&self) -> u64 {
        RAM_BASE.0 + RAM_SIZE
    }
}

/// The machine's disk: [`OUTSIDE`] everywhere, the slice starting with [`DISK_MARKER`].
fn machine_disk() -> Rc<RefCell<MemDisk>> {
    let mut bytes = std::vec![OUTSIDE; DISK_SECTORS * 512];
    let start = SLICE_START as usize * 512;
    bytes[start..start + (SLICE_SECTORS as usize) * 512].fill(0);
    bytes[start..start + DISK_MARKER.len()].copy_from_slice(DISK_MARKER);
    Rc::new(RefCell::new(MemDisk::from_bytes(bytes, false)))
}

#[test]
fn every_case_passes_against_rhyve_s_models() {
    let disk = machine_disk();
    let (hvc0, port1) = (Out::default(), Out::default());
    let mut host = Host::new(disk.clone(), hvc0.clone(), port1.clone());
    let mut names = Vec::new();
    let mut failed = Vec::new();
    let mut token = None;
    cases::run(&mut host, |name, v| {
        names.push(name);
        match v {
            Ok(d) => {
                if name == "console-hvc0" {
                    token = Some(String::from(d.as_str()));
                }
            }
            Err(d) => failed.push(std::format!("{name}: {}", d.as_str())),
        }
    });
    assert!(failed.is_empty(), "failed cases: {failed:#?}");
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "a case name twice: {names:?}");

    // What went through the console: hvc0 carried the line with the case's token; port 1,
    // never set up by the protocol, nothing.
    let out = String::from_utf8(hvc0.0.borrow().clone()).unwrap();
    let token = token.expect("console-hvc0 reported");
    assert_eq!(out, std::format!("{HVC0_LINE} {token}\n"));
    assert!(!out.contains(PORT1_LEAK));
    assert!(port1.0.borrow().is_empty());

    // The card sent the one well-formed frame and dropped the short and the oversized ones.
    let sent = &host.net.device().backend().0;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].len(), 60);
    assert_eq!(&sent[0][6..12], &CARD_MAC);

    // The disk: the write landed in sector 1 of the slice, nothing outside the slice changed.
    let disk = disk.borrow();
    let bytes = disk.as_bytes();
    let start = SLICE_START as usize * 512;
    let end = start + SLICE_SECTORS as usize * 512;
    assert_eq!(
        &bytes[start + 512..start + 512 + WRITE_MARKER.len()],
        WRITE_MARKER
    );
    assert!(
        bytes[..start].iter().all(|b| *b == OUTSIDE),
        "before the slice"
    );
    assert!(
        bytes[end..].iter().all(|b| *b == OUTSIDE),
        "after the slice"
    );
}

/// The checks can fail: the same cases against a disk that is not the slice the VM
/// expects, and a card with another address, report those cases as failures.
#[test]
fn a_machine_unlike_the_scenario_s_fails_the_cases_that_look() {
    let disk = Rc::new(RefCell::new(MemDisk::new(DISK_SECTORS, false)));
    let mut host = Host::new(disk, Out::default(), Out::default());
    host.net = MmioTransport::new(VirtioNet::with_queue_pairs(
        Wire::default(),
        MacAddr::default_for(0, 0),
        MAX_QUEUE_PAIRS,
    ));
    let mut failed = Vec::new();
    cases::run(&mut host, |name, v| {
        if v.is_err() {
            failed.push(name);
        }
    });
    assert_eq!(
        failed,
        ["blk-read-slice", "indirect-ok", "net-config-mac"],
        "only the cases that read the marker or the address"
    );
}
