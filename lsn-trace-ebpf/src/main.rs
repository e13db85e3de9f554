//! lsn-trace's eBPF programs. Data flows one way: a hook collects the request (arguments,
//! caller's sockaddr) and the result, `sock` reads the socket's state through the offsets
//! the agent resolved from BTF, `emit` writes one `Event` into the ring buffer.
#![no_std]
#![no_main]
// asm! on the BPF target: the kfunc call `kernel::rdonly_cast` is built with.
#![feature(asm_experimental_arch)]

mod emit;
mod filter;
mod hooks;
mod kernel;
mod maps;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
