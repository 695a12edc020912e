//! `virtio_blk`: virtio-blk behind the virtio-mmio transport, under the harness of
//! [`crate::virtio`] (its invariants hold here too), over a disk of 0-255 sectors that is a
//! whole `MemDisk` or an `LbaRange` partition of a larger shared one, read-only or not, whose
//! calls fail when the input says (backend completions with an error).
//!
//! Invariants of the device, besides the transport's:
//! - the backend is asked to read or write only whole sectors within the disk's capacity, and
//!   never to write, discard or zero a read-only disk; discard and write-zeroes only when the
//!   driver negotiated them; one request makes calls of one kind only;
//! - what the backend returns for a read is what the model of the disk holds (writes that
//!   succeeded, at the sectors they named); at the end the disk holds the model's bytes, a
//!   partition's neighbours hold what they held, and a read-only disk is unchanged;
//! - every used buffer ends with a status byte of OK, IOERR or UNSUPP, after the data; a
//!   request any of whose backend calls failed is IOERR; an OK read returns exactly the bytes
//!   the backend read, and an OK request without backend calls returns at most a prefix of
//!   the device ID; the used length covers what was written.

use std::cell::RefCell;
use std::rc::Rc;

use arbitrary::{Arbitrary, Unstructured};
use vmm::virtio::blk::{
    feature, request, status, BlockBackend, BlockError, LbaRange, MemDisk, VirtioBlk, ID_BYTES,
    SECTOR_SIZE,
};

use crate::virtio::{Buf, Completion, Model};

const SECTOR: u64 = SECTOR_SIZE as u64;
/// A partition starts this many sectors into its disk, and as many follow it.
const NEIGHBOUR_SECTORS: u64 = 8;
/// What the neighbours of a partition hold.
const NEIGHBOUR_FILL: u8 = 0x5a;

/// What the backend was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// A read that returned these bytes, or failed on purpose.
    Read(Option<Vec<u8>>),
    Write(bool),
    Flush(bool),
    Discard(bool),
    WriteZeroes(bool),
}

impl Call {
    fn failed(&self) -> bool {
        match self {
            Self::Read(d) => d.is_none(),
            Self::Write(ok) | Self::Flush(ok) | Self::Discard(ok) | Self::WriteZeroes(ok) => !ok,
        }
    }

    fn kind(&self) -> u8 {
        match self {
            Self::Read(_) => 0,
            Self::Write(_) => 1,
            Self::Flush(_) => 2,
            Self::Discard(_) => 3,
            Self::WriteZeroes(_) => 4,
        }
    }
}

/// Which backend calls fail (bit per [`Call::kind`]).
#[derive(Debug, Clone, Copy, Default)]
struct Faults(u8);

impl Faults {
    fn hits(self, kind: u8) -> bool {
        self.0 & (1 << kind) != 0
    }
}

enum Inner {
    Whole(MemDisk),
    Part(LbaRange<Rc<RefCell<MemDisk>>>),
}

/// The backend the device gets: the real disk behind checks, a model of its contents, and
/// injected failures.
pub struct Disk {
    inner: Inner,
    read_only: bool,
    sectors: u64,
    /// What the disk must hold, as the device sees it.
    model: Vec<u8>,
    faults: Faults,
    log: Rc<RefCell<Vec<Call>>>,
}

impl Disk {
    fn inner(&mut self) -> &mut dyn BlockBackend {
        match &mut self.inner {
            Inner::Whole(d) => d,
            Inner::Part(p) => p,
        }
    }

    /// Asserts the device's side of the contract: whole sectors, inside the disk.
    fn range(&self, what: &str, sector: u64, len: usize) -> std::ops::Range<usize> {
        assert!(
            len.is_multiple_of(SECTOR_SIZE),
            "{what} of {len} bytes: not whole sectors"
        );
        let count = len as u64 / SECTOR;
        assert!(
            sector.checked_add(count).is_some_and(|e| e <= self.sectors),
            "{what} of {count} sectors at {sector}, past the capacity of {}",
            self.sectors
        );
        let start = (sector * SECTOR) as usize;
        start..start + len
    }

    fn assert_writable(&self, what: &str) {
        assert!(!self.read_only, "{what} on a read-only disk");
    }

    fn record(&self, call: Call) {
        self.log.borrow_mut().push(call);
    }
}

impl BlockBackend for Disk {
    fn capacity_sectors(&self) -> u64 {
        self.sectors
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let r = self.range("read", sector, buf.len());
        if self.faults.hits(0) {
            self.record(Call::Read(None));
            return Err(BlockError::Io);
        }
        self.inner()
            .read(sector, buf)
            .expect("an in-range read of the disk");
        assert_eq!(
            buf, &self.model[r],
            "sector {sector}: the disk does not hold what was written"
        );
        self.record(Call::Read(Some(buf.to_vec())));
        Ok(())
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.assert_writable("write");
        let r = self.range("write", sector, buf.len());
        if self.faults.hits(1) {
            self.record(Call::Write(false));
            return Err(BlockError::Io);
        }
        self.inner()
            .write(sector, buf)
            .expect("an in-range write of a writable disk");
        self.model[r].copy_from_slice(buf);
        self.record(Call::Write(true));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        let fail = self.faults.hits(2);
        self.record(Call::Flush(!fail));
        if fail {
            return Err(BlockError::Io);
        }
        self.inner().flush()
    }

    fn supports_discard(&self) -> bool {
        !self.read_only
    }

    fn discard(&mut self, sector: u64, count: u64) -> Result<(), BlockError> {
        self.assert_writable("discard");
        let len = usize::try_from(count.saturating_mul(SECTOR)).unwrap_or(usize::MAX);
        let r = self.range("discard", sector, len);
        if self.faults.hits(3) {
            self.record(Call::Discard(false));
            return Err(BlockError::Io);
        }
        self.inner()
            .discard(sector, count)
            .expect("an in-range discard");
        // Discarded sectors may hold anything after (§5.2.6.2): learn what they hold.
        let mut now = vec![0; len];
        self.inner().read(sector, &mut now).expect("read back");
        self.model[r].copy_from_slice(&now);
        self.record(Call::Discard(true));
        Ok(())
    }

    fn write_zeroes(&mut self, sector: u64, count: u64, unmap: bool) -> Result<(), BlockError> {
        self.assert_writable("write-zeroes");
        let len = usize::try_from(count.saturating_mul(SECTOR)).unwrap_or(usize::MAX);
        let r = self.range("write-zeroes", sector, len);
        if self.faults.hits(4) {
            self.record(Call::WriteZeroes(false));
            return Err(BlockError::Io);
        }
        self.inner()
            .write_zeroes(sector, count, unmap)
            .expect("an in-range write-zeroes");
        self.model[r].fill(0);
        self.record(Call::WriteZeroes(true));
        Ok(())
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn id(&self) -> [u8; ID_BYTES] {
        match &self.inner {
            Inner::Whole(d) => d.id(),
            Inner::Part(p) => p.id(),
        }
    }
}

/// What a request's first readable buffer holds.
#[derive(Arbitrary, Debug, Clone)]
pub enum Payload {
    /// `struct virtio_blk_req`'s header: type, reserved, sector.
    Header { kind: Kind, sector: Sector },
    /// A DISCARD / WRITE_ZEROES segment: sector, sectors, flags.
    Segment {
        sector: Sector,
        count: u32,
        flags: u32,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Kind {
    In,
    Out,
    Flush,
    GetId,
    Discard,
    WriteZeroes,
    Raw(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Sector {
    Small(u8),
    Raw(u64),
}

impl Sector {
    fn get(self) -> u64 {
        match self {
            Self::Small(s) => u64::from(s),
            Self::Raw(s) => s,
        }
    }
}

/// A well-formed request: header, data in `split` buffers, status byte.
#[derive(Arbitrary, Debug, Clone)]
pub struct Request {
    kind: Kind,
    sector: Sector,
    /// Sectors of data (modulo 17), or for DISCARD / WRITE_ZEROES the segment's count.
    sectors: u8,
    split: u8,
    /// A byte too many before the status: the data is no longer whole sectors.
    odd: bool,
    unmap: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Event {
    /// Backend calls of the kinds in the mask fail from now on.
    Faults(u8),
}

pub struct Blk {
    read_only: bool,
    sectors: u64,
    id: [u8; ID_BYTES],
    negotiated: u64,
    /// The whole disk at the start, for a read-only disk and a partition's neighbours.
    initial: Vec<u8>,
    /// The partition's place in its disk, if it is one.
    part: Option<(Rc<RefCell<MemDisk>>, u64)>,
}

type Dev = VirtioBlk<Disk>;

impl Model for Blk {
    type Dev = Dev;
    type Host = Call;
    type Event = Event;
    type Payload = Payload;
    type Request = Request;
    const DEVICE_ID: u32 = 2;

    fn new(u: &mut Unstructured, log: Rc<RefCell<Vec<Call>>>) -> arbitrary::Result<(Self, Dev)> {
        let sectors = u64::from(u.arbitrary::<u8>()?);
        let read_only: bool = u.arbitrary()?;
        let partition: bool = u.arbitrary()?;
        let fill: u8 = u.arbitrary()?;
        // Recognisable contents: each sector's bytes differ.
        let contents: Vec<u8> = (0..sectors * SECTOR)
            .map(|i| (i as u8).wrapping_mul(31) ^ fill ^ (i / SECTOR) as u8)
            .collect();
        let (inner, initial, part) = if partition {
            let mut whole =
                vec![NEIGHBOUR_FILL; ((sectors + 2 * NEIGHBOUR_SECTORS) * SECTOR) as usize];
            let at = (NEIGHBOUR_SECTORS * SECTOR) as usize;
            whole[at..at + contents.len()].copy_from_slice(&contents);
            let disk = Rc::new(RefCell::new(MemDisk::from_bytes(whole.clone(), false)));
            // The range's own read-only flag, on a writable disk.
            let range = LbaRange::new(disk.clone(), NEIGHBOUR_SECTORS, sectors, read_only)
                .expect("the range lies in its disk")
                .with_id(b"rhyve-part");
            (Inner::Part(range), whole, Some((disk, NEIGHBOUR_SECTORS)))
        } else {
            let disk = MemDisk::from_bytes(contents.clone(), read_only);
            (Inner::Whole(disk), contents.clone(), None)
        };
        let disk = Disk {
            inner,
            read_only,
            sectors,
            model: contents,
            faults: Faults::default(),
            log,
        };
        let id = disk.id();
        let model = Self {
            read_only,
            sectors,
            id,
            negotiated: 0,
            initial,
            part,
        };
        Ok((model, VirtioBlk::new(disk)))
    }

    fn features(&self) -> u64 {
        let f = feature::SIZE_MAX | feature::SEG_MAX | feature::BLK_SIZE | feature::FLUSH;
        if self.read_only {
            f | feature::RO
        } else {
            f | feature::WRITE_ZEROES | feature::DISCARD
        }
    }

    /// §5.2.4, with the limits the device documents: size_max 1 MiB, seg_max 254, 512-byte
    /// blocks, one discard / write-zeroes segment, of up to 2^32 - 1 sectors for a discard and
    /// 16384 (8 MiB) for write-zeroes, no unmap.
    fn config(&self) -> Vec<u8> {
        let mut c = vec![0u8; 72];
        let mut put = |at: usize, b: &[u8]| c[at..at + b.len()].copy_from_slice(b);
        put(0, &self.sectors.to_le_bytes());
        put(8, &(1u32 << 20).to_le_bytes());
        put(12, &254u32.to_le_bytes());
        put(20, &512u32.to_le_bytes());
        put(36, &u32::MAX.to_le_bytes());
        put(40, &1u32.to_le_bytes());
        put(44, &1u32.to_le_bytes());
        put(48, &16384u32.to_le_bytes());
        put(52, &1u32.to_le_bytes());
        c
    }

    fn payload(&self, p: &Payload) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        match *p {
            Payload::Header { kind, sector } => {
                let kind = match kind {
                    Kind::In => request::IN,
                    Kind::Out => request::OUT,
                    Kind::Flush => request::FLUSH,
                    Kind::GetId => request::GET_ID,
                    Kind::Discard => request::DISCARD,
                    Kind::WriteZeroes => request::WRITE_ZEROES,
                    Kind::Raw(k) => k,
                };
                b[0..4].copy_from_slice(&kind.to_le_bytes());
                b[8..16].copy_from_slice(&sector.get().to_le_bytes());
            }
            Payload::Segment {
                sector,
                count,
                flags,
            } => {
                b[0..8].copy_from_slice(&sector.get().to_le_bytes());
                b[8..12].copy_from_slice(&count.to_le_bytes());
                b[12..16].copy_from_slice(&flags.to_le_bytes());
            }
        }
        b
    }

    fn request(&self, r: &Request) -> (usize, Vec<Buf>) {
        let header = self.payload(&Payload::Header {
            kind: r.kind,
            sector: r.sector,
        });
        let mut bufs = vec![Buf::readable(header)];
        let len = u32::from(r.sectors % 17) * SECTOR as u32 + u32::from(r.odd);
        let parts = u32::from(r.split % 4) + 1;
        let mut data = |writable: bool| {
            let mut left = len;
            for i in 0..parts {
                let n = if i + 1 == parts { left } else { left / 2 };
                left -= n;
                bufs.push(if writable {
                    Buf::writable(n)
                } else {
                    Buf::readable((0..n).map(|b| (b as u8) ^ r.sectors).collect())
                });
            }
        };
        match r.kind {
            Kind::In => data(true),
            Kind::Out => data(false),
            Kind::GetId => bufs.push(Buf::writable(ID_BYTES as u32)),
            Kind::Discard | Kind::WriteZeroes => {
                bufs.push(Buf::readable(self.payload(&Payload::Segment {
                    sector: r.sector,
                    count: u32::from(r.sectors),
                    flags: u32::from(r.unmap),
                })))
            }
            Kind::Flush | Kind::Raw(_) => {}
        }
        bufs.push(Buf::writable(1));
        (0, bufs)
    }

    fn event(&mut self, dev: &mut Dev, e: Event) {
        match e {
            Event::Faults(mask) => dev.backend_mut().faults = Faults(mask),
        }
    }

    fn activate(&mut self, features: u64) {
        self.negotiated = features;
    }

    fn reset(&mut self) {
        self.negotiated = 0;
    }

    fn completion(&mut self, _dev: &Dev, c: &Completion, calls: &[Call]) {
        assert_eq!(c.queue, 0, "a used buffer on queue {}", c.queue);
        let Some((&st, data)) = c.data.split_last() else {
            panic!("request {} returned without a status byte", c.head);
        };
        assert!(
            [status::OK, status::IOERR, status::UNSUPP].contains(&st),
            "status byte {st:#x}"
        );
        assert!(
            c.len as usize >= c.data.len(),
            "used length {} below the {} bytes written",
            c.len,
            c.data.len()
        );
        if let Some(first) = calls.first() {
            assert!(
                calls.iter().all(|x| x.kind() == first.kind()),
                "one request, several kinds of backend calls: {calls:?}"
            );
        }
        for call in calls {
            match call {
                Call::Discard(_) => assert_ne!(self.negotiated & feature::DISCARD, 0),
                Call::WriteZeroes(_) => assert_ne!(self.negotiated & feature::WRITE_ZEROES, 0),
                _ => {}
            }
        }
        if calls.iter().any(Call::failed) {
            assert_eq!(st, status::IOERR, "a backend call failed: {calls:?}");
        }
        if st == status::OK {
            let reads: Vec<u8> = calls
                .iter()
                .filter_map(|x| match x {
                    Call::Read(Some(d)) => Some(d.as_slice()),
                    _ => None,
                })
                .flatten()
                .copied()
                .collect();
            if calls.is_empty() {
                assert!(
                    data.len() <= ID_BYTES && data == &self.id[..data.len()],
                    "an OK request without backend calls wrote {data:?}"
                );
            } else if matches!(calls[0], Call::Read(_)) {
                assert!(
                    data == reads,
                    "an OK read returned other bytes than the disk's"
                );
            } else {
                assert!(data.is_empty(), "{calls:?} wrote data into the request");
            }
        }
    }

    /// Calls after the last used buffer belong to a request the device gave up on; the
    /// backend checked each as it came.
    fn check(&mut self, _dev: &Dev, calls: &[Call], failed: bool) {
        assert!(
            failed || calls.is_empty(),
            "backend calls for no used buffer: {calls:?}"
        );
    }

    fn finish(&mut self, dev: &Dev) {
        let disk = dev.backend();
        let model = &disk.model;
        match (&disk.inner, &self.part) {
            (Inner::Whole(d), _) => {
                assert!(
                    d.as_bytes() == model.as_slice(),
                    "the disk is not the model"
                );
            }
            (Inner::Part(_), Some((whole, start))) => {
                let whole = whole.borrow();
                let bytes = whole.as_bytes();
                let at = (start * SECTOR) as usize;
                let end = at + model.len();
                assert!(
                    &bytes[at..end] == model.as_slice(),
                    "the partition is not the model"
                );
                assert!(
                    bytes[..at] == self.initial[..at] && bytes[end..] == self.initial[end..],
                    "a partition's neighbours changed"
                );
            }
            (Inner::Part(_), None) => unreachable!("a partition has its disk"),
        }
        if self.read_only {
            let now = match &self.part {
                Some((whole, _)) => whole.borrow().as_bytes().to_vec(),
                None => model.clone(),
            };
            assert!(now == self.initial, "a read-only disk changed");
        }
    }
}

pub fn run(data: &[u8]) {
    crate::virtio::run::<Blk>(data);
}
