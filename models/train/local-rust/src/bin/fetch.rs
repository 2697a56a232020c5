//! Downloads a URL to a file (an HTTP client, as many legitimate tools are).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = pico_args::Arguments::from_env();
    let out: String = args.value_from_str(["-o", "--output"])?;
    let target: String = args.free_from_str()?;
    let parsed = url::Url::parse(&target)?;
    let resp = ureq::get(parsed.as_str()).call()?;
    let mut file = std::fs::File::create(out)?;
    std::io::copy(&mut resp.into_reader(), &mut file)?;
    Ok(())
}
