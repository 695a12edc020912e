//! `image_loader`: `vmboot::image::inspect` and `vmboot::loader::load` of an arbitrary kernel (raw
//! bytes, or an arm64 Image header with arbitrary fields), initrd, command line, vCPU count
//! and RAM size, into a `VecMemory` of that size (or, for sizes no host can allocate, a memory
//! that only records).
//!
//! Invariants: `inspect` accepts an Image only with a 4 KiB-aligned `text_offset` below
//! 2 MiB, little-endian flags and an `image_size` between the file's length and 1 GiB; the
//! loader refuses exactly the configurations it documents, and writes nothing when it
//! refuses; every write lies inside guest RAM; an `Ok` layout is QEMU virt's `-kernel` one:
//! the kernel where the Image/raw rules say, the initrd page aligned at half of RAM (at most
//! 128 MiB in) or past the kernel, the device tree 2 MiB aligned after it (after that spot
//! with no initrd), none overlapping, all inside RAM, and RAM holds exactly the
//! kernel, initrd and device tree there; the device tree parses back (with the `fdt` crate)
//! and says the RAM, vCPUs, command line and initrd that were loaded.

use abi::layout::{MAX_VCPUS, RAM_BASE};
use abi::GuestPhysAddr;
use arbitrary::Unstructured;
use vmboot::image::{self, ImageError, KernelKind};
use vmboot::loader::{self, GuestConfig, LoadError};
use vmboot::memory::{GuestMemory, MemoryError, VecMemory};

/// The largest RAM the target allocates for real.
const MAX_REAL_RAM: u64 = 8 << 20;
const MIB: u64 = 1 << 20;

/// Guest memory that checks and records every write, forwarding to a `VecMemory` when the
/// RAM is small enough to have one.
struct Recorder {
    ram_end: u64,
    real: Option<VecMemory>,
    writes: Vec<(u64, Vec<u8>)>,
}

impl GuestMemory for Recorder {
    fn write(&mut self, ipa: GuestPhysAddr, data: &[u8]) -> Result<(), MemoryError> {
        let end = ipa.raw().checked_add(data.len() as u64);
        assert!(
            ipa >= RAM_BASE && end.is_some_and(|e| e <= self.ram_end),
            "the loader writes {:#x} bytes at {ipa} outside RAM ending at {:#x}",
            data.len(),
            self.ram_end
        );
        if let Some(real) = &mut self.real {
            real.write(ipa, data)?;
        }
        self.writes.push((ipa.raw(), data.to_vec()));
        Ok(())
    }

    fn read(&self, ipa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), MemoryError> {
        match &self.real {
            Some(real) => real.read(ipa, buf),
            None => Err(MemoryError::OutOfRange {
                ipa,
                len: buf.len() as u64,
            }),
        }
    }
}

/// An arm64 Image header (booting.rst) with the given fields, then `body`.
fn image_file(code0: u32, text_offset: u64, image_size: u64, flags: u64, body: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; image::HEADER_SIZE];
    h[0..4].copy_from_slice(&code0.to_le_bytes());
    h[8..16].copy_from_slice(&text_offset.to_le_bytes());
    h[16..24].copy_from_slice(&image_size.to_le_bytes());
    h[24..32].copy_from_slice(&flags.to_le_bytes());
    h[56..60].copy_from_slice(&image::MAGIC.to_le_bytes());
    h.extend_from_slice(body);
    h
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = one(&mut u);
}

fn one(u: &mut Unstructured) -> arbitrary::Result<()> {
    let vcpus = match u.arbitrary::<u8>()? {
        0 => 0,
        255 => u.arbitrary::<u32>()?,
        n => u32::from(n) % (MAX_VCPUS as u32 + 1) + 1,
    };
    let mem_size = match u.arbitrary::<u8>()? % 8 {
        0 => 0,
        1 => u.arbitrary::<u64>()?,
        2 => u64::MAX - u64::from(u.arbitrary::<u16>()?),
        3 => u64::from(u.arbitrary::<u8>()?) * MIB,
        _ => u64::from(u.arbitrary::<u16>()? % 2048 + 1) * 4096,
    };
    let cmdline: String = u.arbitrary()?;
    let initrd: Option<Vec<u8>> = match u.arbitrary::<u8>()? % 4 {
        0 => None,
        1 => Some(u.arbitrary()?),
        _ => {
            let fill = u.arbitrary::<u8>()?;
            Some(vec![fill; usize::from(u.arbitrary::<u16>()?) * 16])
        }
    };
    let kernel: Vec<u8> = if u.arbitrary::<bool>()? {
        let code0 = u.arbitrary()?;
        let text_offset = match u.arbitrary::<u8>()? % 4 {
            0 => u.arbitrary()?,
            _ => u64::from(u.arbitrary::<u16>()? % 600) * 4096,
        };
        let image_size = match u.arbitrary::<u8>()? % 4 {
            0 => u.arbitrary()?,
            1 => 0,
            _ => u64::from(u.arbitrary::<u32>()? % (64 << 20) as u32),
        };
        let flags = u.arbitrary::<u64>()? & if u.arbitrary::<bool>()? { 0xe } else { !0 };
        let body = u.bytes(u.len())?;
        image_file(code0, text_offset, image_size, flags, body)
    } else {
        u.bytes(u.len())?.to_vec()
    };
    check_inspect(&kernel);
    check_load(vcpus, mem_size, &kernel, initrd.as_deref(), &cmdline);
    Ok(())
}

fn check_inspect(kernel: &[u8]) {
    let kind = image::inspect(kernel);
    let has_magic =
        kernel.len() >= image::HEADER_SIZE && kernel[56..60] == image::MAGIC.to_le_bytes();
    match kind {
        Ok(KernelKind::Raw) => assert!(!has_magic, "an Image header taken for raw"),
        Ok(KernelKind::Image(h)) => {
            assert!(has_magic);
            assert_eq!(h.text_offset % image::TEXT_OFFSET_ALIGN, 0);
            assert!(h.text_offset < image::BASE_ALIGN);
            assert!(h.image_size >= kernel.len() as u64);
            assert!(h.image_size <= image::MAX_IMAGE_SIZE);
            assert_eq!(h.flags & 1, 0, "big-endian accepted");
            if h.legacy {
                assert_eq!(h.text_offset, image::LEGACY_TEXT_OFFSET);
                assert_eq!(h.image_size, kernel.len() as u64);
            }
        }
        Err(ImageError::ImageSizeTooSmall {
            image_size,
            file_len,
        }) => assert!(image_size < file_len),
        Err(_) => assert!(has_magic, "a raw kernel refused: {kind:?}"),
    }
}

fn check_load(vcpus: u32, mem_size: u64, kernel: &[u8], initrd: Option<&[u8]>, cmdline: &str) {
    let cfg = GuestConfig {
        vcpus,
        mem_size,
        kernel,
        initrd,
        cmdline,
    };
    let ram_end = RAM_BASE.raw().checked_add(mem_size);
    let mut mem = Recorder {
        ram_end: ram_end.unwrap_or(u64::MAX),
        real: (mem_size <= MAX_REAL_RAM).then(|| VecMemory::new(RAM_BASE, mem_size as usize)),
        writes: Vec::new(),
    };
    let result = loader::load(&cfg, &mut mem);

    let info = match result {
        Err(e) => {
            assert!(mem.writes.is_empty(), "{e:?} after writing guest RAM");
            assert!(
                !matches!(e, LoadError::Memory(_)),
                "the layout was not checked: {e:?}"
            );
            let vcpus_ok = (1..=MAX_VCPUS as u64).contains(&u64::from(vcpus));
            if !vcpus_ok {
                assert_eq!(e, LoadError::BadVcpuCount(vcpus));
            } else if mem_size == 0 || ram_end.is_none() {
                assert_eq!(e, LoadError::BadMemorySize(mem_size));
            } else if kernel.is_empty() {
                assert_eq!(e, LoadError::EmptyKernel);
            } else if let Err(ie) = image::inspect(kernel) {
                assert_eq!(e, LoadError::Image(ie));
            } else {
                assert!(
                    matches!(
                        e,
                        LoadError::DoesNotFit { .. }
                            | LoadError::DeviceTreeTooLarge { .. }
                            | LoadError::DeviceTree(vmboot::fdt::FdtError::CmdlineHasNul)
                    ),
                    "unexpected {e:?}"
                );
                if matches!(e, LoadError::DeviceTree(_)) {
                    assert!(cmdline.contains('\0'));
                }
            }
            return;
        }
        Ok(info) => info,
    };
    let ram_end = ram_end.expect("a loaded guest has a RAM end");
    let kind = image::inspect(kernel).expect("a loaded kernel passes inspect");
    let (entry, footprint) = (info.kernel.0.raw(), info.kernel.1);
    assert_eq!(info.entry.raw(), entry);
    match kind {
        KernelKind::Image(h) => {
            // QEMU's load_aarch64_image: text_offset from RAM base, 2 MiB up if it is below
            // the boot stub's page.
            let offset = if h.text_offset < loader::BOOT_STUB_SIZE {
                h.text_offset + loader::IMAGE_LOW_SHIFT
            } else {
                h.text_offset
            };
            assert_eq!(entry, RAM_BASE.raw() + offset);
            assert_eq!(footprint, h.image_size);
        }
        KernelKind::Raw => {
            assert_eq!(entry, RAM_BASE.raw() + loader::RAW_KERNEL_OFFSET);
            assert_eq!(footprint, kernel.len() as u64);
        }
    }
    assert!(footprint >= kernel.len() as u64);
    let kernel_end = entry + footprint;
    assert!(kernel_end <= ram_end, "kernel past RAM");
    assert!(info.dtb_size > 0);

    // The initrd spot (whether or not there is an initrd): half of RAM in, at most 128 MiB,
    // not below the kernel's end, page aligned; the tree after it, 2 MiB aligned.
    let page = loader::INITRD_ALIGN;
    let high = RAM_BASE.raw() + (mem_size / 2).min(loader::INITRD_MAX_OFFSET);
    let spot = high.max(kernel_end).div_ceil(page) * page;
    let initrd = initrd.filter(|i| !i.is_empty());
    assert_eq!(info.initrd.is_some(), initrd.is_some());
    let initrd_end = match (info.initrd, initrd) {
        (Some((start, len)), Some(data)) => {
            let start = start.raw();
            assert_eq!(len, data.len() as u64);
            assert_eq!(start, spot, "initrd placement (kernel end {kernel_end:#x})");
            assert_eq!(start % page, 0, "initrd at {start:#x}");
            assert!(start >= kernel_end, "initrd overlaps the kernel");
            assert!(start + len <= ram_end, "initrd past RAM");
            start + len
        }
        _ => spot,
    };
    let dtb_start = info.dtb.raw();
    assert_eq!(
        dtb_start,
        initrd_end.div_ceil(loader::DTB_ALIGN) * loader::DTB_ALIGN
    );
    assert_eq!(
        dtb_start % loader::DTB_ALIGN,
        0,
        "device tree at {dtb_start:#x}"
    );
    assert!(dtb_start >= kernel_end, "device tree overlaps the kernel");
    assert!(dtb_start + info.dtb_size <= ram_end, "device tree past RAM");

    // What was written, where, in order: kernel, initrd, device tree.
    let mut expect: Vec<(u64, &[u8])> = vec![(entry, kernel)];
    if let (Some((start, _)), Some(data)) = (info.initrd, initrd) {
        expect.push((start.raw(), data));
    }
    assert_eq!(mem.writes.len(), expect.len() + 1, "number of writes");
    for ((at, bytes), (w_at, w_bytes)) in expect.iter().zip(&mem.writes) {
        assert_eq!(at, w_at);
        assert!(bytes == w_bytes);
    }
    let (dtb_at, dtb) = mem.writes.last().expect("the device tree was written");
    assert_eq!(*dtb_at, dtb_start);
    assert_eq!(dtb.len() as u64, info.dtb_size);
    if mem.real.is_some() {
        for (at, bytes) in &mem.writes {
            let mut back = vec![0; bytes.len()];
            mem.read(GuestPhysAddr(*at), &mut back)
                .expect("written RAM reads back");
            assert!(
                &back == bytes,
                "RAM at {at:#x} does not hold what was written"
            );
        }
    }
    crate::fdt_generate::check_tree(
        dtb,
        vcpus,
        mem_size,
        cmdline,
        info.initrd.map(|(s, l)| (s.raw(), l)),
        None,
    );
}
