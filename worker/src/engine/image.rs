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
    check_jpeg_complete(bytes, what)?;
    let err = |source| ImageError::Decode { what: what.to_string(), source };
    let reader = image::ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| err(e.into()))?;
    let img = reader.decode().map_err(err)?;
    Ok(match img {
        image::DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    })
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
    let complete = match bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]) {
        Some(sos) => bytes[sos..].windows(2).any(|w| w == [0xFF, 0xD9]),
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

thread_local! {
    // A resizer keeps scratch buffers; one per decode thread avoids reallocating.
    static RESIZER: RefCell<fr::Resizer> = RefCell::new(fr::Resizer::new());
}

/// Resizes (and crops) an RGB8 image to S×S; returns HWC u8 pixels.
pub fn resize_crop(img: &RgbImage, cfg: &PreprocessConfig, what: &str) -> Result<Vec<u8>, ImageError> {
    let (w, h) = img.dimensions();
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
                // matches; the crop is then a plain copy.
                return Ok(copy_window(img, x0, y0, s));
            }
            let (sx, sy) = (w as f64 / rw as f64, h as f64 / rh as f64);
            let (left, top) = (x0 as f64 * sx, y0 as f64 * sy);
            // Float rounding may put the window's far edge a hair past the image.
            (left, top, (s as f64 * sx).min(w as f64 - left), (s as f64 * sy).min(h as f64 - top))
        }
    };
    if cfg.resize_mode == ResizeMode::Squash && w == s && h == s {
        return Ok(img.as_raw().clone());
    }
    let filter = match cfg.interpolation {
        Interpolation::Bicubic => fr::FilterType::CatmullRom,
        Interpolation::Bilinear => fr::FilterType::Bilinear,
    };
    let radius = filter_radius(cfg.interpolation);
    let alg = fr::ResizeAlg::Convolution(filter);
    let src = fr::images::ImageRef::new(w, h, img.as_raw(), fr::PixelType::U8x3).map_err(|e| rerr(e.to_string()))?;
    // PIL runs the horizontal pass first and rounds to u8 before the vertical
    // one; fast_image_resize does the reverse for u8 images, which differs by
    // up to ~9/255 near sharp edges when upscaling (Catmull-Rom overshoots and
    // is clipped in between). So run the two passes separately in PIL's order,
    // the first only over the rows the second reads.
    let scale_y = ch / s as f64;
    let reach = radius * scale_y.max(1.0) + 1.0;
    let y0 = (top - reach).floor().max(0.0) as u32;
    let y1 = ((top + ch + reach).ceil() as u32).min(h);
    let src_rows = fr::images::CroppedImage::new(&src, 0, y0, w, y1 - y0).map_err(|e| rerr(e.to_string()))?;
    let mut mid = fr::images::Image::new(s, y1 - y0, fr::PixelType::U8x3);
    let mut dst = fr::images::Image::new(s, s, fr::PixelType::U8x3);
    RESIZER
        .with(|r| -> Result<(), fr::ResizeError> {
            let mut r = r.borrow_mut();
            let h_opts = fr::ResizeOptions::new().resize_alg(alg).crop(left, 0.0, cw, (y1 - y0) as f64);
            r.resize(&src_rows, &mut mid, &h_opts)?;
            let v_opts = fr::ResizeOptions::new().resize_alg(alg).crop(0.0, top - y0 as f64, s as f64, ch);
            r.resize(&mid, &mut dst, &v_opts)
        })
        .map_err(|e| rerr(e.to_string()))?;
    Ok(dst.into_vec())
}

/// The filter's support radius in source pixels at scale 1 (PIL: bicubic 2, bilinear 1).
fn filter_radius(interp: Interpolation) -> f64 {
    match interp {
        Interpolation::Bicubic => 2.0,
        Interpolation::Bilinear => 1.0,
    }
}

fn copy_window(img: &RgbImage, x0: u32, y0: u32, s: u32) -> Vec<u8> {
    let w = img.width() as usize;
    let raw = img.as_raw();
    let mut out = Vec::with_capacity(3 * (s as usize) * (s as usize));
    for y in y0 as usize..(y0 + s) as usize {
        let row = &raw[3 * (y * w + x0 as usize)..3 * (y * w + (x0 + s) as usize)];
        out.extend_from_slice(row);
    }
    out
}

/// HWC u8 → CHW f32, `(x/255 − mean)/std`; `out` has 3·S·S floats.
pub fn normalize_chw(hwc: &[u8], cfg: &PreprocessConfig, out: &mut [f32]) {
    let plane = cfg.size as usize * cfg.size as usize;
    assert_eq!(hwc.len(), 3 * plane, "HWC buffer size");
    assert_eq!(out.len(), 3 * plane, "CHW buffer size");
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    // Same arithmetic as ToTensor (x/255) then Normalize ((x−m)/s), so an
    // image that needs no resizing gives bit-identical input to open_clip.
    let (m, sd) = (cfg.mean, cfg.std);
    for (i, px) in hwc.chunks_exact(3).enumerate() {
        r[i] = (px[0] as f32 / 255.0 - m[0]) / sd[0];
        g[i] = (px[1] as f32 / 255.0 - m[1]) / sd[1];
        b[i] = (px[2] as f32 / 255.0 - m[2]) / sd[2];
    }
}

/// Decode + resize/crop + normalise one image into `out` (3·S·S floats).
pub fn preprocess_into(bytes: &[u8], cfg: &PreprocessConfig, what: &str, out: &mut [f32]) -> Result<(), ImageError> {
    let img = decode_rgb(bytes, what)?;
    let hwc = resize_crop(&img, cfg, what)?;
    normalize_chw(&hwc, cfg, out);
    Ok(())
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
    fn corrupt_bytes_are_a_decode_error_naming_the_image() {
        let err = decode_rgb(b"not an image", "cls/x.jpg").unwrap_err();
        assert!(err.to_string().contains("cls/x.jpg"), "{err}");
    }
}
