//! Image preprocessing with torchvision's semantics on PIL images, which is
//! what open_clip's `preprocess` transform does:
//!
//! 1. decode (JPEG/PNG/WebP) and convert to RGB8 (alpha dropped, grey replicated);
//! 2. `shortest`: resize the short side to `S` (long side `int(S·long/short)`)
//!    with PIL's antialiased convolution (bicubic = Catmull-Rom, or bilinear),
//!    then centre-crop `S×S` at `top = round((h−S)/2)` (Python's banker's
//!    rounding); `squash`: resize to `S×S`;
//! 3. `/255`, normalise with mean/std, lay out as CHW f32.
//!
//! The crop is folded into the resize (only the cropped window is computed;
//! the filter still reads pixels outside it, as a full resize would), which
//! saves the work on the long side's discarded margins. The two convolution
//! passes run in PIL's order (horizontal, round to u8, vertical).
//!
//! `preprocess_into` decodes into, and resizes through, buffers kept per
//! thread, and normalises straight from the S×S window into the CHW output.

use fast_image_resize as fr;
use image::RgbImage;
use std::cell::RefCell;
use std::io::Cursor;

// The metadata's own enums (model.json `resize_mode`, `interpolation`).
pub use super::artifact::{Interpolation, ResizeMode};

/// What a model's `model.json` says about its input images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreprocessConfig {
    pub size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub resize_mode: ResizeMode,
    pub interpolation: Interpolation,
}

impl PreprocessConfig {
    /// open_clip's defaults for a CLIP model at `size` (OpenAI mean/std, bicubic, shortest).
    pub fn clip(size: u32) -> Self {
        PreprocessConfig {
            size,
            mean: [0.481_454_66, 0.457_827_5, 0.408_210_73],
            std: [0.268_629_54, 0.261_302_6, 0.275_777_1],
            resize_mode: ResizeMode::Shortest,
            interpolation: Interpolation::Bicubic,
        }
    }

    pub fn from_meta(meta: &super::artifact::ModelMeta) -> Self {
        PreprocessConfig {
            size: meta.image_size,
            mean: meta.mean,
            std: meta.std,
            resize_mode: meta.resize_mode,
            interpolation: meta.interpolation,
        }
    }

    /// Floats in one preprocessed image (3·S·S).
    pub fn image_len(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot decode image {what}: {source} (is it a valid JPEG, PNG or WebP file?)")]
    Decode { what: String, source: image::ImageError },
    #[error("image {what} is truncated: a {size}-byte JPEG without its end-of-image marker after the last scan (the file was cut short; copy it again)")]
    Truncated { what: String, size: usize },
    #[error("cannot resize image {what} ({width}x{height}): {reason}")]
    Resize { what: String, width: u32, height: u32, reason: String },
}

/// Decodes JPEG/PNG/WebP bytes (format guessed from the content) to RGB8.
/// `what` names the image in errors (a path or a tar key).
pub fn decode_rgb(bytes: &[u8], what: &str) -> Result<RgbImage, ImageError> {
    let mut buf = Vec::new();
    let (w, h) = decode_into(bytes, what, &mut buf)?;
    buf.truncate(3 * w as usize * h as usize);
    Ok(RgbImage::from_raw(w, h, buf).expect("the decoder filled width·height RGB pixels"))
}

/// Decodes into `buf` (grown as needed, never shrunk; the pixels are its
/// first 3·w·h bytes) and returns (width, height).
fn decode_into(bytes: &[u8], what: &str, buf: &mut Vec<u8>) -> Result<(u32, u32), ImageError> {
    check_jpeg_complete(bytes, what)?;
    if let Some(size) = decode_jpeg_into(bytes, buf) {
        return Ok(size);
    }
    let err = |source| ImageError::Decode { what: what.to_string(), source };
    let reader = image::ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| err(e.into()))?;
    let rgb = match reader.decode().map_err(err)? {
        image::DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    };
    let size = rgb.dimensions();
    *buf = rgb.into_raw();
    Ok(size)
}

/// The common case, a YCbCr, RGB or grey JPEG, decoded by zune-jpeg straight
/// into `buf`: the `image` crate runs the same decoder with the same options,
/// but copies the input, parses the headers twice and returns a fresh,
/// zeroed buffer for every image. Returns None for anything else (not a
/// JPEG, another colour space, an error, an image over the `image` crate's
/// 512 MiB default limit), which `decode_into` leaves to the `image` crate
/// so that it decodes or reports the error exactly as before.
fn decode_jpeg_into(bytes: &[u8], buf: &mut Vec<u8>) -> Option<(u32, u32)> {
    use zune_core::colorspace::ColorSpace;
    if !bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return None;
    }
    let options = zune_core::options::DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(zune_core::bytestream::ZCursor::new(bytes), options);
    decoder.decode_headers().ok()?;
    // Grey is replicated into R, G and B, as `to_rgb8` (and PIL's convert("RGB")) do.
    if !matches!(decoder.input_colorspace()?, ColorSpace::YCbCr | ColorSpace::RGB | ColorSpace::Luma) {
        return None;
    }
    let (w, h) = decoder.dimensions()?;
    let len = decoder.output_buffer_size()?;
    if len > 512 << 20 || len != 3 * w * h {
        return None;
    }
    if buf.len() < len {
        buf.resize(len, 0);
    }
    decoder.decode_into(&mut buf[..len]).ok()?;
    // JPEG dimensions are 16-bit.
    Some((w as u32, h as u32))
}

/// The JPEG decoder fills a cut-off scan with grey and reports success; PIL
/// (what open_clip reads images with) refuses such a file as truncated. A
/// whole JPEG has an end-of-image marker (FF D9) after its last start-of-scan
/// (FF DA); inside scan data an FF byte is always followed by 00 or a restart
/// marker, so neither marker can appear there by accident.
fn check_jpeg_complete(bytes: &[u8], what: &str) -> Result<(), ImageError> {
    if !bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(());
    }
    let find = |hay: &[u8], marker: [u8; 2]| hay.windows(2).position(|w| w == marker);
    // "The last SOS has an EOI after it" is "the last EOI has an SOS before it
    // and none after it". Searched that way round, both searches stop near
    // the file's ends (the EOI is at or near the end, the first SOS after the
    // headers) instead of crossing the whole scan data.
    let complete = match bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]) {
        Some(eoi) => find(&bytes[eoi..], [0xFF, 0xDA]).is_none() && find(&bytes[..eoi], [0xFF, 0xDA]).is_some(),
        None => false,
    };
    if complete {
        Ok(())
    } else {
        Err(ImageError::Truncated { what: what.to_string(), size: bytes.len() })
    }
}

/// torchvision's `Resize(S)` output size for a (width, height) image:
/// the short side becomes S, the long side `int(S·long/short)`.
pub fn resized_size(width: u32, height: u32, size: u32) -> (u32, u32) {
    let (short, long) = if width <= height { (width, height) } else { (height, width) };
    // Exact integer product, then one correctly rounded division, as Python's
    // `int(size * long / short)`.
    let new_long = ((size as u64 * long as u64) as f64 / short as f64) as u32;
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// torchvision's `CenterCrop` offset: `int(round((dim − S) / 2))`, ties to even.
pub fn crop_offset(dim: u32, size: u32) -> u32 {
    ((dim as f64 - size as f64) / 2.0).round_ties_even().max(0.0) as u32
}

/// Buffers kept per thread from image to image: the resizer's own, the
/// decoded image, and the outputs of the two convolution passes. Fresh
/// buffers cost zeroing and, for the multi-megabyte decoded image, page
/// faults on every image (about 6% of the time per image when measured).
#[derive(Default)]
struct Scratch {
    decoded: Vec<u8>,
    resize: ResizeBuffers,
}

#[derive(Default)]
struct ResizeBuffers {
    resizer: fr::Resizer,
    /// The horizontal pass's output.
    mid: Vec<u8>,
    /// The vertical pass's output, S×S.
    dst: Vec<u8>,
}

/// A decoded image larger than this (about 5.6 megapixels) gives its buffer
/// back after use rather than holding it for the thread's lifetime.
const KEEP_DECODED_BYTES: usize = 16 << 20;

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// An S×S window of HWC RGB8 pixels inside a larger buffer: row `y` is the
/// 3·S bytes at `offset + y·stride`.
struct Window<'a> {
    data: &'a [u8],
    offset: usize,
    stride: usize,
    size: usize,
}

impl<'a> Window<'a> {
    /// A whole S×S HWC image.
    fn whole(data: &'a [u8], size: usize) -> Self {
        Window { data, offset: 0, stride: 3 * size, size }
    }

    fn rows(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.size).map(|y| &self.data[self.offset + y * self.stride..][..3 * self.size])
    }
}

/// Resizes (and crops) an RGB8 image to S×S; returns HWC u8 pixels.
pub fn resize_crop(img: &RgbImage, cfg: &PreprocessConfig, what: &str) -> Result<Vec<u8>, ImageError> {
    let (w, h) = img.dimensions();
    SCRATCH.with_borrow_mut(|sc| {
        let window = resize_window(img.as_raw(), w, h, cfg, what, &mut sc.resize)?;
        let mut out = Vec::with_capacity(cfg.image_len());
        window.rows().for_each(|row| out.extend_from_slice(row));
        Ok(out)
    })
}

/// The S×S output of resize + crop for the w×h RGB8 image `src`: a window of
/// `src` itself when no resizing is needed, else of `bufs.dst`.
fn resize_window<'a>(
    src: &'a [u8],
    w: u32,
    h: u32,
    cfg: &PreprocessConfig,
    what: &str,
    bufs: &'a mut ResizeBuffers,
) -> Result<Window<'a>, ImageError> {
    let s = cfg.size;
    let rerr = |reason: String| ImageError::Resize { what: what.to_string(), width: w, height: h, reason };
    if w == 0 || h == 0 {
        return Err(rerr("the image is empty".into()));
    }
    // The window of the source (in source pixels) that maps onto the S×S output.
    let (left, top, cw, ch) = match cfg.resize_mode {
        ResizeMode::Squash => (0.0, 0.0, w as f64, h as f64),
        ResizeMode::Shortest => {
            let (rw, rh) = resized_size(w, h, s);
            if rw < s || rh < s {
                return Err(rerr(format!("resized to {rw}x{rh}, smaller than the {s}x{s} crop")));
            }
            let (x0, y0) = (crop_offset(rw, s), crop_offset(rh, s));
            if rw == w && rh == h {
                // torchvision returns the image unchanged when the size already
                // matches; the crop is then a plain window of the source.
                let stride = 3 * w as usize;
                let offset = y0 as usize * stride + 3 * x0 as usize;
                return Ok(Window { data: src, offset, stride, size: s as usize });
            }
            let (sx, sy) = (w as f64 / rw as f64, h as f64 / rh as f64);
            let (left, top) = (x0 as f64 * sx, y0 as f64 * sy);
            // Float rounding may put the window's far edge a hair past the image.
            (left, top, (s as f64 * sx).min(w as f64 - left), (s as f64 * sy).min(h as f64 - top))
        }
    };
    if cfg.resize_mode == ResizeMode::Squash && w == s && h == s {
        return Ok(Window::whole(src, s as usize));
    }
    let filter = match cfg.interpolation {
        Interpolation::Bicubic => fr::FilterType::CatmullRom,
        Interpolation::Bilinear => fr::FilterType::Bilinear,
    };
    let radius = filter_radius(cfg.interpolation);
    let alg = fr::ResizeAlg::Convolution(filter);
    let src_img = fr::images::ImageRef::new(w, h, src, fr::PixelType::U8x3).map_err(|e| rerr(e.to_string()))?;
    // PIL runs the horizontal pass first and rounds to u8 before the vertical
    // one; fast_image_resize does the reverse for u8 images, which differs by
    // up to ~9/255 near sharp edges when upscaling (Catmull-Rom overshoots and
    // is clipped in between). So run the two passes separately in PIL's order,
    // the first only over the rows the second reads.
    let scale_y = ch / s as f64;
    let reach = radius * scale_y.max(1.0) + 1.0;
    let y0 = (top - reach).floor().max(0.0) as u32;
    let y1 = ((top + ch + reach).ceil() as u32).min(h);
    let src_rows = fr::images::CroppedImage::new(&src_img, 0, y0, w, y1 - y0).map_err(|e| rerr(e.to_string()))?;
    let ResizeBuffers { resizer, mid, dst } = bufs;
    let mut mid_img = image_in(mid, s, y1 - y0).map_err(|e| rerr(e.to_string()))?;
    let h_opts = fr::ResizeOptions::new().resize_alg(alg).crop(left, 0.0, cw, (y1 - y0) as f64);
    resizer.resize(&src_rows, &mut mid_img, &h_opts).map_err(|e| rerr(e.to_string()))?;
    let mut dst_img = image_in(dst, s, s).map_err(|e| rerr(e.to_string()))?;
    let v_opts = fr::ResizeOptions::new().resize_alg(alg).crop(0.0, top - y0 as f64, s as f64, ch);
    resizer.resize(&mid_img, &mut dst_img, &v_opts).map_err(|e| rerr(e.to_string()))?;
    Ok(Window::whole(dst, s as usize))
}

/// A w×h RGB8 image over the start of `buf`, grown as needed (the resizer
/// writes every pixel, so old contents need no clearing).
fn image_in(buf: &mut Vec<u8>, w: u32, h: u32) -> Result<fr::images::Image<'_>, fr::ImageBufferError> {
    let len = 3 * w as usize * h as usize;
    if buf.len() < len {
        buf.resize(len, 0);
    }
    fr::images::Image::from_slice_u8(w, h, &mut buf[..len], fr::PixelType::U8x3)
}

/// The filter's support radius in source pixels at scale 1 (PIL: bicubic 2, bilinear 1).
fn filter_radius(interp: Interpolation) -> f64 {
    match interp {
        Interpolation::Bicubic => 2.0,
        Interpolation::Bilinear => 1.0,
    }
}

/// HWC u8 → CHW f32, `(x/255 − mean)/std`; `out` has 3·S·S floats.
pub fn normalize_chw(hwc: &[u8], cfg: &PreprocessConfig, out: &mut [f32]) {
    assert_eq!(hwc.len(), cfg.image_len(), "HWC buffer size");
    normalize_window(&Window::whole(hwc, cfg.size as usize), cfg, out);
}

/// `normalize_chw` for a window: crop and normalise in one pass, with no
/// intermediate copy of the cropped pixels.
fn normalize_window(window: &Window<'_>, cfg: &PreprocessConfig, out: &mut [f32]) {
    let s = window.size;
    let plane = s * s;
    assert_eq!(out.len(), 3 * plane, "CHW buffer size");
    // Each channel has 256 possible values: look them up rather than divide
    // twice per value. The table uses the same arithmetic as ToTensor (x/255)
    // then Normalize ((x−m)/s), so an image that needs no resizing still
    // gives bit-identical input to open_clip.
    let (m, sd) = (cfg.mean, cfg.std);
    let lut: [[f32; 256]; 3] = std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 / 255.0 - m[c]) / sd[c]));
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    let planes = r.chunks_exact_mut(s).zip(g.chunks_exact_mut(s)).zip(b.chunks_exact_mut(s));
    for (row, ((r, g), b)) in window.rows().zip(planes) {
        for (px, ((r, g), b)) in row.chunks_exact(3).zip(r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut())) {
            *r = lut[0][px[0] as usize];
            *g = lut[1][px[1] as usize];
            *b = lut[2][px[2] as usize];
        }
    }
}

/// Decode + resize/crop + normalise one image into `out` (3·S·S floats),
/// reusing this thread's buffers.
pub fn preprocess_into(bytes: &[u8], cfg: &PreprocessConfig, what: &str, out: &mut [f32]) -> Result<(), ImageError> {
    SCRATCH.with_borrow_mut(|sc| {
        let Scratch { decoded, resize } = sc;
        let (w, h) = decode_into(bytes, what, decoded)?;
        let pixels = &decoded[..3 * w as usize * h as usize];
        let window = resize_window(pixels, w, h, cfg, what, resize)?;
        normalize_window(&window, cfg, out);
        if decoded.len() > KEEP_DECODED_BYTES {
            *decoded = Vec::new();
        }
        Ok(())
    })
}

/// A batch of preprocessed images, contiguous as `[n, 3, S, S]`.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    pub data: Vec<f32>,
    pub n: usize,
    pub size: u32,
}

impl ImageBatch {
    pub fn to_tensor(&self) -> tch::Tensor {
        let s = self.size as i64;
        tch::Tensor::from_slice(&self.data).view([self.n as i64, 3, s, s])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_and_crop_follow_torchvision() {
        assert_eq!(resized_size(500, 333, 224), (336, 224));
        assert_eq!(resized_size(333, 500, 224), (224, 336));
        assert_eq!(resized_size(640, 640, 224), (224, 224));
        assert_eq!(resized_size(64, 48, 224), (298, 224));
        // (336−224)/2 = 56; (225−224)/2 = 0.5 → 0 (ties to even); (227−224)/2 = 1.5 → 2.
        assert_eq!(crop_offset(336, 224), 56);
        assert_eq!(crop_offset(225, 224), 0);
        assert_eq!(crop_offset(227, 224), 2);
    }

    #[test]
    fn constant_image_stays_constant_and_normalises() {
        let img = RgbImage::from_pixel(97, 61, image::Rgb([200, 100, 50]));
        let cfg = PreprocessConfig::clip(32);
        let hwc = resize_crop(&img, &cfg, "test").unwrap();
        assert_eq!(hwc.len(), 3 * 32 * 32);
        assert!(hwc.chunks(3).all(|p| p == [200, 100, 50]));
        let mut out = vec![0.0; cfg.image_len()];
        normalize_chw(&hwc, &cfg, &mut out);
        let want_r = (200.0 / 255.0 - cfg.mean[0]) / cfg.std[0];
        assert!((out[0] - want_r).abs() < 1e-5);
        let want_b = (50.0 / 255.0 - cfg.mean[2]) / cfg.std[2];
        assert!((out[2 * 32 * 32 + 5] - want_b).abs() < 1e-5);
    }

    #[test]
    fn a_truncated_jpeg_is_refused_naming_the_file() {
        let img = RgbImage::from_fn(48, 40, |x, y| image::Rgb([(x * 5) as u8, (y * 6) as u8, ((x * y) % 251) as u8]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&img).unwrap();
        assert!(decode_rgb(&jpeg, "cls/whole.jpg").is_ok());
        let cut = &jpeg[..jpeg.len() / 2];
        let err = decode_rgb(cut, "cls/cut.jpg").unwrap_err();
        assert!(matches!(err, ImageError::Truncated { .. }), "{err}");
        assert!(err.to_string().contains("cls/cut.jpg"), "{err}");
        // Trailing bytes after a whole JPEG (some cameras write them) are fine.
        let mut trailing = jpeg.clone();
        trailing.extend_from_slice(&[0, 0, 0]);
        assert!(decode_rgb(&trailing, "cls/trailing.jpg").is_ok());
    }

    #[test]
    fn an_earlier_end_marker_does_not_make_a_cut_jpeg_whole() {
        // An EXIF thumbnail is a whole JPEG inside the file, before the main
        // image's scan: its end marker must not count for the main scan.
        let img = RgbImage::from_fn(40, 32, |x, y| image::Rgb([(x * 6) as u8, (y * 7) as u8, 90]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&img).unwrap();
        // The same JPEG again, cut in the middle of its scan.
        let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let mut bytes = jpeg.clone();
        bytes.extend_from_slice(&jpeg[..(sos + jpeg.len()) / 2]);
        let err = decode_rgb(&bytes, "cls/thumb.jpg").unwrap_err();
        assert!(matches!(err, ImageError::Truncated { .. }), "{err}");
    }

    fn jpeg_of(img: image::DynamicImage) -> Vec<u8> {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85).encode_image(&img).unwrap();
        jpeg
    }

    fn textured(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7 + y) as u8, (y * 5) as u8, ((x * y) % 253) as u8]))
    }

    #[test]
    fn the_direct_jpeg_decoder_gives_the_image_crates_pixels() {
        let colour = jpeg_of(textured(53, 41).into());
        let grey = jpeg_of(image::DynamicImage::ImageRgb8(textured(37, 29)).grayscale());
        for bytes in [colour, grey] {
            let want = image::load_from_memory(&bytes).unwrap().to_rgb8();
            let mut buf = Vec::new();
            assert_eq!(decode_jpeg_into(&bytes, &mut buf), Some(want.dimensions()));
            assert_eq!(decode_rgb(&bytes, "x.jpg").unwrap(), want);
        }
    }

    #[test]
    fn preprocess_into_equals_the_stage_functions_image_after_image() {
        // Shrinking, growing and no-resize cases one after another on one
        // thread, so the reused buffers hold an earlier, larger image's data.
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(textured(32, 45)).write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let cases = [
            (jpeg_of(textured(120, 90).into()), ResizeMode::Shortest, Interpolation::Bicubic),
            (jpeg_of(textured(20, 30).into()), ResizeMode::Shortest, Interpolation::Bicubic),
            (png, ResizeMode::Shortest, Interpolation::Bilinear), // already 32 wide: a plain crop
            (jpeg_of(textured(32, 32).into()), ResizeMode::Squash, Interpolation::Bicubic),
            (jpeg_of(textured(77, 31).into()), ResizeMode::Squash, Interpolation::Bilinear),
        ];
        for (bytes, resize_mode, interpolation) in &cases {
            let cfg = PreprocessConfig { resize_mode: *resize_mode, interpolation: *interpolation, ..PreprocessConfig::clip(32) };
            let hwc = resize_crop(&decode_rgb(bytes, "x").unwrap(), &cfg, "x").unwrap();
            let mut want = vec![0.0; cfg.image_len()];
            normalize_chw(&hwc, &cfg, &mut want);
            let mut got = vec![f32::NAN; cfg.image_len()];
            preprocess_into(bytes, &cfg, "x", &mut got).unwrap();
            assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{resize_mode:?}/{interpolation:?}");
        }
    }

    #[test]
    fn normalisation_is_torchvisions_arithmetic_bit_for_bit() {
        let cfg = PreprocessConfig::clip(16);
        let hwc: Vec<u8> = (0..cfg.image_len()).map(|i| (i * 37 % 256) as u8).collect();
        let mut out = vec![0.0; cfg.image_len()];
        normalize_chw(&hwc, &cfg, &mut out);
        let plane = 16 * 16;
        for (i, px) in hwc.chunks_exact(3).enumerate() {
            for c in 0..3 {
                let want = (px[c] as f32 / 255.0 - cfg.mean[c]) / cfg.std[c];
                assert_eq!(out[c * plane + i].to_bits(), want.to_bits());
            }
        }
    }

    #[test]
    fn corrupt_bytes_are_a_decode_error_naming_the_image() {
        let err = decode_rgb(b"not an image", "cls/x.jpg").unwrap_err();
        assert!(err.to_string().contains("cls/x.jpg"), "{err}");
    }
}
