//! The `gplake` binary: the command line of [`gplake_cli::run`], with the process-wide
//! settings only a binary may make (allocator, SIGPIPE).

use std::process::ExitCode;

// A build allocates and frees millions of small strings and buffers across two threads:
// mimalloc does that faster than glibc's malloc and hands memory back between months
// instead of letting each thread's arenas grow with the history.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc commits whole arenas up front on Linux by default, and memory freed in such an
// arena is never decommitted, so it stays counted in the process's memory: a one-month build
// peaks ~75 MiB higher. The option must be set before mimalloc reads its options, in its own
// load-time constructor, so this runs as an earlier-priority constructor (a user's own
// setting wins).
//
// mimalloc 3 also keeps a freed page a whole second before handing it back (its purge
// delay). A build frees a month's buffers every half second on each core, so the pages of
// the last few months stayed counted: 10 ms (mimalloc 2's default) took a 12-month build's
// peak from 327 to 241 MiB in the same time (6.5 and 6.3 s, means of 4 alternating rounds).
#[cfg(all(feature = "mimalloc", target_os = "linux"))]
#[used]
#[unsafe(link_section = ".init_array.00099")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

#[cfg(all(feature = "mimalloc", target_os = "linux"))]
extern "C" fn configure_allocator() {
    // SAFETY: runs before main, while the process has one thread and nothing reads the
    // environment concurrently.
    unsafe {
        libc::setenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr(), c"0".as_ptr(), 0);
        libc::setenv(c"MIMALLOC_PURGE_DELAY".as_ptr(), c"10".as_ptr(), 0);
    }
}

fn main() -> ExitCode {
    // Like other Unix tools, stop quietly when the reader of our output goes away
    // (`gplake status | head`), instead of panicking on a broken pipe.
    // SAFETY: restoring the default SIGPIPE action before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    ExitCode::from(gplake_cli::run(std::env::args_os()))
}
