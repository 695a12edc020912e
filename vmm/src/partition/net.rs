//! The machine's network as the VMs see it: a learning switch ([`Switch`]) with one port per
//! VM's virtio-net and one more, the uplink, for the machine's own network card.
//!
//! A guest's transmitted frame goes through the switch at once: to the card (sent, and
//! waited for), and to other VMs' cards when they are free (a VM whose devices are busy on
//! another CPU loses the frame, as a congested switch would: waiting could deadlock two VMs
//! sending to each other). A frame the card receives arrives as [`host_irq`]: each goes
//! through the switch to the VMs it is for.
//!
//! The switch hands a frame for a VM to the delivery the VM's devices registered
//! ([`set_delivery`]), so this module does not depend on them.
//!
//! Lock order: a VM's devices -> the switch -> the card; a second VM's devices only with
//! `try_lock`.

use super::host::NIC;
use abi::vmm::MAX_VMS;
use abi::VmId;
use spin::{Mutex, Once};
use vmm::virtio::net::{NetBackend, NetError, MAX_FRAME};
use vmm::virtio::switch::{PortId, Switch};

/// The switch's port for the machine's network card.
const UPLINK: PortId = MAX_VMS;
/// Addresses the switch remembers.
const TABLE: usize = 64;

static SWITCH: Once<Mutex<Switch>> = Once::new();

/// Hands a frame to a VM's network card: `(vm, frame, wait)`, `wait` saying whether to block
/// for the VM's devices (no other lock held) or give up if another CPU has them.
pub type Delivery = fn(VmId, &[u8], bool);

static DELIVERY: Once<Delivery> = Once::new();

/// Sets where frames for VMs go (once, before any VM's card runs).
pub fn set_delivery(deliver: Delivery) {
    DELIVERY.call_once(|| deliver);
}

/// Hands `frame` to `vm`'s card through the registered delivery (dropped if none).
fn deliver(vm: VmId, frame: &[u8], wait: bool) {
    if let Some(d) = DELIVERY.get() {
        d(vm, frame, wait);
    }
}

fn switch() -> &'static Mutex<Switch> {
    SWITCH.call_once(|| Mutex::new(Switch::new(MAX_VMS + 1, TABLE)))
}

/// The ports `frame` from `ingress` goes to.
fn destinations(ingress: PortId, frame: &[u8]) -> [bool; MAX_VMS + 1] {
    let mut out = [false; MAX_VMS + 1];
    switch().lock().forward_each(ingress, frame, |p| {
        if let Some(o) = out.get_mut(p) {
            *o = true;
        }
    });
    out
}

/// A VM's port on the switch.
pub struct NetPort {
    vm: VmId,
}

impl NetPort {
    /// VM `vm`'s port.
    pub fn new(vm: VmId) -> Self {
        Self { vm }
    }
}

impl NetBackend for NetPort {
    fn send(&mut self, frame: &[u8]) -> Result<(), NetError> {
        let to = destinations(usize::from(self.vm.0), frame);
        for (port, _) in to.iter().enumerate().filter(|(_, go)| **go) {
            if port == UPLINK {
                if let Some(nic) = NIC.lock().as_mut() {
                    if !nic.send(frame) {
                        return Err(NetError::Io);
                    }
                }
            } else if port != usize::from(self.vm.0) {
                deliver(VmId(port as u16), frame, false);
            }
        }
        Ok(())
    }
}

/// Takes what the card received if its interrupt does not reach the VMM: called on every
/// request, with no lock held.
pub fn poll_without_irq() {
    let polled = NIC.lock().as_ref().is_some_and(|n| !n.irq);
    if polled {
        host_irq();
    }
}

/// The machine's network card raised its interrupt: takes every received frame and sends
/// each through the switch. No lock is held on entry.
pub fn host_irq() {
    if let Some(nic) = NIC.lock().as_mut() {
        nic.ack_interrupt();
    }
    drain(None, |_| {});
}

/// Takes every frame the card has received and sends each through the switch. `me`: the VM
/// whose devices the caller holds; its frames go to `mine`, and other VMs are only tried
/// (see the module's lock order). With `None` no lock is held and every VM is waited for.
pub fn drain(me: Option<VmId>, mut mine: impl FnMut(&[u8])) {
    let mut buf = [0u8; MAX_FRAME];
    loop {
        let len = {
            let mut nic = NIC.lock();
            let Some(nic) = nic.as_mut() else {
                return;
            };
            let Some(n) = nic.receive(&mut buf) else {
                return;
            };
            n
        };
        // A frame longer than any guest takes was dropped (length 0).
        let Some(frame) = buf.get(..len).filter(|f| !f.is_empty()) else {
            continue;
        };
        let to = destinations(UPLINK, frame);
        for (port, _) in to.iter().enumerate().filter(|(_, go)| **go) {
            if port == UPLINK {
                continue;
            }
            let vm = VmId(port as u16);
            if Some(vm) == me {
                mine(frame);
            } else {
                deliver(vm, frame, me.is_none());
            }
        }
    }
}
