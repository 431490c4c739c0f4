//! The `gplake` binary: the command line of [`gplake_cli::run`], with the process-wide
//! settings only a binary may make (allocator, SIGPIPE).

use std::process::ExitCode;

// A build allocates and frees millions of small strings and buffers across two threads:
// mimalloc does that faster than glibc's malloc and hands memory back between months
// instead of letting each thread's arenas grow with the history.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Like other Unix tools, stop quietly when the reader of our output goes away
    // (`gplake status | head`), instead of panicking on a broken pipe.
    // SAFETY: restoring the default SIGPIPE action before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    ExitCode::from(gplake_cli::run(std::env::args_os()))
}
