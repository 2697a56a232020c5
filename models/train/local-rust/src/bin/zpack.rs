//! Compresses or decompresses stdin to stdout with zstd.
fn main() -> std::io::Result<()> {
    let decompress = std::env::args().any(|a| a == "-d");
    let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
    if decompress {
        zstd::stream::copy_decode(stdin.lock(), stdout.lock())
    } else {
        zstd::stream::copy_encode(stdin.lock(), stdout.lock(), 3)
    }
}
