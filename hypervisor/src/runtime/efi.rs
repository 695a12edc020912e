//! The image started by UEFI as an EFI application (`efi_entry`, the PE/COFF entry point):
//! the way a board's UEFI firmware boots rhyve, from its EFI system partition.
//!
//! With boot services still up, it checks it runs at EL2, takes the device tree from the
//! configuration table, reads the boot bundle (`bundle.bin`, next to the image on the same
//! file system) into pages it allocates, exits boot services, notes which of the firmware's
//! memory stays the firmware's, and enters the core as a loader would, MMU off, x0 = the tree,
//! the bundle and those ranges in a `hypervisor::efi::Handoff`. Every failure before that is
//! said on UEFI's console and returned to the firmware as a status; nothing after it can fail.

use crate::arch::{boot, cpu};
use core::convert::Infallible;
use core::ffi::c_void;
use core::fmt::{self, Write};
use hypervisor::efi::{self, Handoff, Kept, HANDOFF_MAGIC, MAX_PATH};
use uefi_raw::protocol::console::SimpleTextOutputProtocol;
use uefi_raw::protocol::device_path::{DevicePathProtocol, DeviceSubType, DeviceType};
use uefi_raw::protocol::file_system::{
    FileAttribute, FileInfo, FileMode, FileProtocolV1, SimpleFileSystemProtocol,
};
use uefi_raw::protocol::loaded_image::LoadedImageProtocol;
use uefi_raw::table::boot::{AllocateType, BootServices, MemoryDescriptor, MemoryType, PAGE_SIZE};
use uefi_raw::table::system::SystemTable;
use uefi_raw::{guid, Guid, Handle, Status};

/// The configuration table entry of a flattened device tree (UEFI 2.10, 4.6.1.3).
const DEVICE_TREE_GUID: Guid = guid!("b1b621d5-f19c-41a5-830b-d9152c69aae0");
/// ExitBootServices attempts: the map may change between GetMemoryMap and the call
/// (EFI_INVALID_PARAMETER), and is then fetched again.
const EXIT_TRIES: usize = 4;
/// Descriptors of room beyond the map's size, for what allocating its buffer adds.
const MAP_SLACK: usize = 8;
/// The longest device path read for the image's file (bytes).
const MAX_DEVICE_PATH: usize = 4096;

/// Why the UEFI entry gave up (before leaving boot services, or at leaving them).
#[derive(Debug, Clone, Copy)]
enum EfiError {
    /// UEFI started the image at this exception level, not EL2.
    NotEl2(u64),
    /// No device tree in the configuration table.
    NoDeviceTree,
    /// The configuration table's device tree has no valid header.
    BadDeviceTree,
    /// A boot service failed: which, and its status.
    Service(&'static str, Status),
    /// The image's device path names no file (loaded from memory?).
    NoImagePath,
    /// The bundle's file could not be opened.
    OpenBundle(Status),
    /// The bundle's file ended before its size.
    ShortBundle { read: u64, size: u64 },
}

impl EfiError {
    fn status(self) -> Status {
        match self {
            Self::NotEl2(_) => Status::UNSUPPORTED,
            Self::NoDeviceTree | Self::BadDeviceTree => Status::NOT_FOUND,
            Self::Service(_, s) | Self::OpenBundle(s) => s,
            Self::NoImagePath => Status::NOT_FOUND,
            Self::ShortBundle { .. } => Status::END_OF_FILE,
        }
    }
}

impl fmt::Display for EfiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotEl2(el) => write!(
                f,
                "rhyve must be entered at EL2 (UEFI started it at EL{el}): the firmware itself runs at EL{el}, so rhyve cannot be booted by it (QEMU needs -M virt,virtualization=on)"
            ),
            Self::NoDeviceTree => f.write_str(
                "UEFI's configuration table has no device tree (DEVICE_TREE_GUID): rhyve needs one (an ACPI-only firmware cannot boot it)",
            ),
            Self::BadDeviceTree => {
                f.write_str("the configuration table's device tree has no valid header")
            }
            Self::Service(what, s) => write!(f, "UEFI {what} failed: status {:#x}", s.0),
            Self::NoImagePath => f.write_str(
                "the image's device path names no file, so the boot bundle cannot be found next to it",
            ),
            Self::OpenBundle(s) => write!(
                f,
                "no boot bundle: {} next to the image could not be opened (status {:#x}): copy the bundle there",
                efi::BUNDLE_NAME,
                s.0
            ),
            Self::ShortBundle { read, size } => {
                write!(f, "the boot bundle's file ended after {read} of its {size} bytes")
            }
        }
    }
}

/// UEFI's console (ConOut): text as UCS-2, `\n` as CR LF.
struct ConOut(*mut SimpleTextOutputProtocol);

impl ConOut {
    fn flush(&mut self, buf: &mut [u16], len: usize) {
        buf[len] = 0;
        // SAFETY: the system table's ConOut, valid while boot services are; `buf` is
        // NUL-terminated. A console that cannot print has no one to tell.
        let _ = unsafe { ((*self.0).output_string)(self.0, buf.as_ptr()) };
    }
}

impl Write for ConOut {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut buf = [0u16; 64];
        let mut len = 0;
        for c in s.chars() {
            if c == '\n' {
                buf[len] = u16::from(b'\r');
                len += 1;
            }
            buf[len] = u16::try_from(u32::from(c)).unwrap_or(u16::from(b'?'));
            len += 1;
            if len >= buf.len() - 2 {
                self.flush(&mut buf, len);
                len = 0;
            }
        }
        self.flush(&mut buf, len);
        Ok(())
    }
}

/// The image's Rust entry as an EFI application (from `efi_entry`, relocated): returns only
/// to report a failure to the firmware.
#[no_mangle]
pub extern "C" fn efi_main(
    image: Handle,
    system_table: *mut SystemTable,
    image_base: usize,
) -> Status {
    // SAFETY: UEFI passes its system table; it stays valid while boot services are up, and
    // this returns before they go only on failure.
    let st = unsafe { &*system_table };
    let mut out = ConOut(st.stdout);
    match run(image, st, image_base, &mut out) {
        Ok(never) => match never {},
        Err(e) => {
            let _ = writeln!(out, "rhyve: error: {e}");
            e.status()
        }
    }
}

/// Turns a status into a result.
fn check(what: &'static str, s: Status) -> Result<(), EfiError> {
    if s.is_error() {
        Err(EfiError::Service(what, s))
    } else {
        Ok(())
    }
}

fn run(
    image: Handle,
    st: &SystemTable,
    image_base: usize,
    out: &mut ConOut,
) -> Result<Infallible, EfiError> {
    let el = boot::current_el();
    if el != 2 {
        return Err(EfiError::NotEl2(el));
    }
    let _ = writeln!(
        out,
        "rhyve: started by UEFI at EL2, image at {image_base:#x}"
    );
    // SAFETY: the system table's boot services, valid until ExitBootServices.
    let bs = unsafe { &*st.boot_services };
    let (dtb, dtb_size) = device_tree(st)?;
    let (bundle, bundle_size) = read_bundle(bs, image, out)?;
    let handoff = allocate(bs, core::mem::size_of::<Handoff>())?;
    let _ = writeln!(
        out,
        "rhyve: boot bundle ({bundle_size} bytes) at {bundle:#x}, device tree at {dtb:#x}; leaving boot services"
    );
    let kept = exit_boot_services(bs, image)?;
    // From here on there is no firmware: nothing may fail, nothing is printed.
    let record = Handoff {
        magic: HANDOFF_MAGIC,
        bundle_start: bundle,
        bundle_end: bundle + bundle_size,
        kept,
    };
    // SAFETY: the page allocated for it above, ours (loader data) now boot services are gone.
    unsafe { core::ptr::write_volatile(handoff as *mut Handoff, record) };
    extern "C" {
        static __image_end: u8;
    }
    let image_end = core::ptr::addr_of!(__image_end) as usize;
    for (start, len) in [
        (image_base, image_end - image_base),
        (dtb, dtb_size),
        (bundle as usize, bundle_size as usize),
        (handoff as usize, core::mem::size_of::<Handoff>()),
    ] {
        cpu::clean_invalidate_dcache_range(start, len);
    }
    // SAFETY: boot services are gone, what the core reads with its MMU off was cleaned and
    // invalidated above and nothing was written after, and UEFI maps all memory one to one.
    unsafe { boot::leave_firmware(dtb, handoff as usize) }
}

/// The device tree of the configuration table: its address and size.
fn device_tree(st: &SystemTable) -> Result<(usize, usize), EfiError> {
    // SAFETY: the system table's configuration table, of the length it says.
    let tables = unsafe {
        core::slice::from_raw_parts(
            st.configuration_table,
            st.number_of_configuration_table_entries,
        )
    };
    let dtb = tables
        .iter()
        .find(|t| t.vendor_guid == DEVICE_TREE_GUID)
        .ok_or(EfiError::NoDeviceTree)?
        .vendor_table as usize;
    // SAFETY: the firmware's device tree; `from_ptr` checks its header before reading on.
    let tree =
        unsafe { fdt::Fdt::from_ptr(dtb as *const u8) }.map_err(|_| EfiError::BadDeviceTree)?;
    Ok((dtb, tree.total_size()))
}

/// `size` bytes of whole pages of loader data, which stay ours after ExitBootServices.
fn allocate(bs: &BootServices, size: usize) -> Result<u64, EfiError> {
    let mut addr = 0;
    // SAFETY: a boot service, called while boot services are up; `addr` is written.
    let s = unsafe {
        (bs.allocate_pages)(
            AllocateType::ANY_PAGES,
            MemoryType::LOADER_DATA,
            size.div_ceil(PAGE_SIZE).max(1),
            &mut addr,
        )
    };
    check("AllocatePages", s)?;
    Ok(addr)
}

/// The image's device path as bytes, through its end node (at most [`MAX_DEVICE_PATH`]).
fn device_path_bytes(path: *const DevicePathProtocol) -> Option<&'static [u8]> {
    if path.is_null() {
        return None;
    }
    let mut len = 0;
    loop {
        // SAFETY: a node of the firmware's device path: every node, the end node last, starts
        // with this 4-byte header (UEFI 2.10, 10.3.1), which `len` stays within.
        let node = unsafe { &*path.cast::<u8>().add(len).cast::<DevicePathProtocol>() };
        let node_len = usize::from(node.length());
        if node.major_type == DeviceType::END && node.sub_type == DeviceSubType::END_ENTIRE {
            len += 4;
            break;
        }
        if node_len < 4 || len + node_len > MAX_DEVICE_PATH {
            return None;
        }
        len += node_len;
    }
    // SAFETY: the nodes walked above.
    Some(unsafe { core::slice::from_raw_parts(path.cast::<u8>(), len) })
}

/// Reads the bundle from the file system the image came from, into loader-data pages: its
/// address and size.
fn read_bundle(bs: &BootServices, image: Handle, out: &mut ConOut) -> Result<(u64, u64), EfiError> {
    let mut li: *mut c_void = core::ptr::null_mut();
    // SAFETY: a boot service; `li` is written.
    let s = unsafe { (bs.handle_protocol)(image, &LoadedImageProtocol::GUID, &mut li) };
    check("HandleProtocol(LoadedImage)", s)?;
    // SAFETY: the image's loaded-image protocol, which the firmware keeps while it runs.
    let li = unsafe { &*li.cast::<LoadedImageProtocol>() };
    let mut path = [0u16; MAX_PATH];
    let len = device_path_bytes(li.file_path)
        .and_then(efi::image_file_path)
        .and_then(|p| efi::bundle_path(p, &mut path))
        .ok_or(EfiError::NoImagePath)?;
    let name = char::decode_utf16(path[..len].iter().copied());
    let _ = write!(out, "rhyve: reading the boot bundle ");
    for c in name {
        let _ = out.write_char(c.unwrap_or('?'));
    }
    let _ = writeln!(out);

    let mut fs: *mut c_void = core::ptr::null_mut();
    // SAFETY: a boot service; `fs` is written.
    let s =
        unsafe { (bs.handle_protocol)(li.device_handle, &SimpleFileSystemProtocol::GUID, &mut fs) };
    check("HandleProtocol(SimpleFileSystem) on the image's device", s)?;
    let fs = fs.cast::<SimpleFileSystemProtocol>();
    let mut root: *mut FileProtocolV1 = core::ptr::null_mut();
    // SAFETY: the device's file system protocol; `root` is written.
    check("OpenVolume", unsafe { ((*fs).open_volume)(fs, &mut root) })?;
    let mut file: *mut FileProtocolV1 = core::ptr::null_mut();
    // SAFETY: the volume's root; `path` is NUL-terminated; `file` is written.
    let s = unsafe {
        ((*root).open)(
            root,
            &mut file,
            path.as_ptr(),
            FileMode::READ,
            FileAttribute::empty(),
        )
    };
    if s.is_error() {
        return Err(EfiError::OpenBundle(s));
    }
    /// Room for a FileInfo and the file's name.
    #[repr(C, align(8))]
    struct InfoBuf([u8; 512]);
    let mut info = InfoBuf([0; 512]);
    let mut info_size = info.0.len();
    // SAFETY: the open file; `info` has `info_size` bytes, aligned for a FileInfo.
    let s = unsafe {
        ((*file).get_info)(
            file,
            &FileInfo::ID,
            &mut info_size,
            info.0.as_mut_ptr().cast(),
        )
    };
    check("GetInfo of the bundle", s)?;
    // SAFETY: GetInfo filled a FileInfo at the buffer's start.
    let size = unsafe { (*info.0.as_ptr().cast::<FileInfo>()).file_size };
    let addr = allocate(bs, size as usize)?;
    let mut done = 0u64;
    while done < size {
        let mut n = (size - done) as usize;
        // SAFETY: the open file; the pages allocated for its `size` bytes, `done` of them
        // filled.
        let s = unsafe { ((*file).read)(file, &mut n, (addr + done) as *mut c_void) };
        check("Read of the bundle", s)?;
        if n == 0 {
            return Err(EfiError::ShortBundle { read: done, size });
        }
        done += n as u64;
    }
    // SAFETY: the file and the root opened above, closed once. Closing a file only read
    // cannot lose anything.
    unsafe {
        let _ = ((*file).close)(file);
        let _ = ((*root).close)(root);
    }
    Ok((addr, size))
}

/// Fetches the memory map and exits boot services with its key, again if the map changed;
/// returns the ranges that stay the firmware's ([`efi::kept_after_exit`]).
fn exit_boot_services(bs: &BootServices, image: Handle) -> Result<Kept, EfiError> {
    let (mut size, mut key, mut desc_size, mut version) = (0, 0, 0, 0);
    // SAFETY: a boot service asked for the map's size only (no buffer).
    let s = unsafe {
        (bs.get_memory_map)(
            &mut size,
            core::ptr::null_mut(),
            &mut key,
            &mut desc_size,
            &mut version,
        )
    };
    if s != Status::BUFFER_TOO_SMALL {
        check("GetMemoryMap", s)?;
    }
    let capacity = size + MAP_SLACK * desc_size.max(core::mem::size_of::<MemoryDescriptor>());
    let map = allocate(bs, capacity)? as *mut MemoryDescriptor;
    let mut tries = 0;
    loop {
        size = capacity;
        // SAFETY: a boot service; `map` has `capacity` bytes.
        let s =
            unsafe { (bs.get_memory_map)(&mut size, map, &mut key, &mut desc_size, &mut version) };
        check("GetMemoryMap", s)?;
        // SAFETY: a boot service, with the key of the map just fetched.
        let s = unsafe { (bs.exit_boot_services)(image, key) };
        tries += 1;
        if s == Status::SUCCESS {
            break;
        }
        if s != Status::INVALID_PARAMETER || tries == EXIT_TRIES {
            return Err(EfiError::Service("ExitBootServices", s));
        }
    }
    let mut kept = Kept::default();
    for i in 0..size / desc_size {
        // SAFETY: the map GetMemoryMap wrote, `desc_size` bytes a descriptor (which may be
        // larger than the struct).
        let d = unsafe {
            core::ptr::read_unaligned(
                map.cast::<u8>()
                    .add(i * desc_size)
                    .cast::<MemoryDescriptor>(),
            )
        };
        if efi::kept_after_exit(d.ty) {
            kept.add(d.phys_start, d.page_count * PAGE_SIZE as u64);
        }
    }
    Ok(kept)
}
