//! A small QR code encoder (ISO/IEC 18004): byte mode, error correction
//! level M, versions 1 to 10 (up to 213 bytes), for the receive link the
//! page shows. Bytes in, a square of modules out; [`Qr::svg`] draws it.
//!
//! The steps are the standard's: encode the bytes into data codewords
//! (mode, count, bytes, terminator, padding), split them into blocks and
//! add Reed-Solomon error correction (GF(256), polynomial 0x11D), interleave
//! the blocks, place the bits around the function patterns, then try the
//! eight masks and keep the one with the lowest penalty. Pure and sans-io;
//! `tests/it/page.rs` reads what it draws back with `zbarimg`.

/// Per version (index 0 = version 1), level M: error correction codewords
/// per block, then blocks of the short kind with their data codewords,
/// then blocks of the long kind (one more data codeword each).
const BLOCKS_M: [(usize, usize, usize, usize); 10] = [
    (10, 1, 16, 0),
    (16, 1, 28, 0),
    (26, 1, 44, 0),
    (18, 2, 32, 0),
    (24, 2, 43, 0),
    (16, 4, 27, 0),
    (18, 4, 31, 0),
    (22, 2, 38, 2),
    (22, 3, 36, 2),
    (26, 4, 43, 1),
];

/// Centres of the alignment patterns per version (rows and columns alike).
const ALIGN: [&[usize]; 10] = [
    &[],
    &[6, 18],
    &[6, 22],
    &[6, 26],
    &[6, 30],
    &[6, 34],
    &[6, 22, 38],
    &[6, 24, 42],
    &[6, 26, 46],
    &[6, 28, 50],
];

/// The largest version this encoder makes.
pub const MAX_VERSION: usize = 10;

/// Why a text cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "too long for a QR code of version {MAX_VERSION} (213 bytes at most)"
        )
    }
}

/// An encoded symbol: `size × size` modules, `true` is dark.
#[derive(Clone, PartialEq, Eq)]
pub struct Qr {
    /// Modules per side (`17 + 4 × version`).
    pub size: usize,
    /// The version (1 to [`MAX_VERSION`]).
    pub version: usize,
    /// The mask chosen (0 to 7).
    pub mask: u8,
    modules: Vec<bool>,
    function: Vec<bool>,
}

impl std::fmt::Debug for Qr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qr")
            .field("version", &self.version)
            .field("mask", &self.mask)
            .finish_non_exhaustive()
    }
}

impl Qr {
    /// Encode `data` in the smallest version that holds it.
    pub fn encode(data: &[u8]) -> Result<Qr, TooLong> {
        let version = (1..=MAX_VERSION)
            .find(|&v| data_capacity(v) * 8 >= 4 + count_bits(v) + 8 * data.len())
            .ok_or(TooLong)?;
        let codewords = with_ec(version, &data_codewords(version, data));
        let size = 17 + 4 * version;
        let mut qr = Qr {
            size,
            version,
            mask: 0,
            modules: vec![false; size * size],
            function: vec![false; size * size],
        };
        qr.draw_function_patterns();
        qr.place(&codewords);
        let mut best: Option<(u32, u8)> = None;
        for mask in 0..8u8 {
            qr.apply_mask(mask);
            qr.draw_format(mask);
            let p = qr.penalty();
            if best.map_or(true, |(bp, _)| p < bp) {
                best = Some((p, mask));
            }
            qr.apply_mask(mask); // XOR again: undone
        }
        let mask = best.map_or(0, |(_, m)| m);
        qr.apply_mask(mask);
        qr.draw_format(mask);
        qr.mask = mask;
        Ok(qr)
    }

    /// Whether the module at column `x`, row `y` is dark.
    pub fn dark(&self, x: usize, y: usize) -> bool {
        self.modules[y * self.size + x]
    }

    /// The symbol as SVG: one unit per module, a 4-module quiet zone,
    /// dark on white whatever the page's colours.
    pub fn svg(&self) -> String {
        let side = self.size + 8;
        let mut path = String::with_capacity(self.size * self.size * 4);
        for y in 0..self.size {
            let mut x = 0;
            while x < self.size {
                if !self.dark(x, y) {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < self.size && self.dark(x, y) {
                    x += 1;
                }
                path.push_str(&format!(
                    "M{} {}h{}v1H{}z",
                    start + 4,
                    y + 4,
                    x - start,
                    start + 4
                ));
            }
        }
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
             shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" \
             fill=\"#fff\"/><path fill=\"#000\" d=\"{path}\"/></svg>\n"
        )
    }

    fn set(&mut self, x: usize, y: usize, dark: bool) {
        let i = y * self.size + x;
        self.modules[i] = dark;
        self.function[i] = true;
    }

    fn draw_function_patterns(&mut self) {
        let n = self.size;
        // Timing patterns.
        for i in 0..n {
            self.set(6, i, i % 2 == 0);
            self.set(i, 6, i % 2 == 0);
        }
        // Finders with their separators.
        for (cx, cy) in [(3, 3), (n - 4, 3), (3, n - 4)] {
            for dy in -4i32..=4 {
                for dx in -4i32..=4 {
                    let (x, y) = (cx as i32 + dx, cy as i32 + dy);
                    if x < 0 || y < 0 || x >= n as i32 || y >= n as i32 {
                        continue;
                    }
                    let d = dx.abs().max(dy.abs());
                    self.set(x as usize, y as usize, d != 2 && d != 4);
                }
            }
        }
        // Alignment patterns, except where they would overlap a finder.
        let centres = ALIGN[self.version - 1];
        let last = centres.len().saturating_sub(1);
        for (i, &cy) in centres.iter().enumerate() {
            for (j, &cx) in centres.iter().enumerate() {
                if (i == 0 && (j == 0 || j == last)) || (i == last && j == 0) {
                    continue;
                }
                for dy in -2i32..=2 {
                    for dx in -2i32..=2 {
                        let d = dx.abs().max(dy.abs());
                        let (x, y) = ((cx as i32 + dx) as usize, (cy as i32 + dy) as usize);
                        self.set(x, y, d != 1);
                    }
                }
            }
        }
        // Reserve the format areas (drawn for real per mask) and the dark module.
        self.draw_format(0);
        // Version information, versions 7 and up.
        if self.version >= 7 {
            let v = self.version as u32;
            let bits = v << 12 | bch(v, 0x1F25, 12);
            for i in 0..18 {
                let dark = bits >> i & 1 == 1;
                let (a, b) = (n - 11 + i % 3, i / 3);
                self.set(a, b, dark);
                self.set(b, a, dark);
            }
        }
    }

    /// Both copies of the format information (level M = 0b00, `mask`).
    fn draw_format(&mut self, mask: u8) {
        let data = u32::from(mask); // level M's two bits are 00
        let bits = (data << 10 | bch(data, 0x537, 10)) ^ 0x5412;
        let bit = |i: usize| bits >> i & 1 == 1;
        let n = self.size;
        for i in 0..6 {
            self.set(8, i, bit(i));
        }
        self.set(8, 7, bit(6));
        self.set(8, 8, bit(7));
        self.set(7, 8, bit(8));
        for i in 9..15 {
            self.set(14 - i, 8, bit(i));
        }
        for i in 0..8 {
            self.set(n - 1 - i, 8, bit(i));
        }
        for i in 8..15 {
            self.set(8, n - 15 + i, bit(i));
        }
        self.set(8, n - 8, true);
    }

    /// Lay the codewords' bits in the zigzag of two-module columns, from
    /// the bottom right, skipping function modules and the timing column.
    fn place(&mut self, codewords: &[u8]) {
        let n = self.size;
        let total = codewords.len() * 8;
        let mut i = 0;
        let mut right = n - 1;
        loop {
            if right == 6 {
                right = 5;
            }
            let upward = ((right + 1) & 2) == 0;
            for k in 0..n {
                let y = if upward { n - 1 - k } else { k };
                for x in [right, right - 1] {
                    if self.function[y * n + x] {
                        continue;
                    }
                    // Remainder bits past the codewords stay light.
                    let dark = i < total && codewords[i / 8] >> (7 - i % 8) & 1 == 1;
                    self.modules[y * n + x] = dark;
                    i += 1;
                }
            }
            if right < 2 {
                break;
            }
            right -= 2;
        }
    }

    fn apply_mask(&mut self, mask: u8) {
        let n = self.size;
        for y in 0..n {
            for x in 0..n {
                let flip = match mask {
                    0 => (x + y) % 2 == 0,
                    1 => y % 2 == 0,
                    2 => x % 3 == 0,
                    3 => (x + y) % 3 == 0,
                    4 => (x / 3 + y / 2) % 2 == 0,
                    5 => x * y % 2 + x * y % 3 == 0,
                    6 => (x * y % 2 + x * y % 3) % 2 == 0,
                    _ => ((x + y) % 2 + x * y % 3) % 2 == 0,
                };
                let i = y * n + x;
                if flip && !self.function[i] {
                    self.modules[i] = !self.modules[i];
                }
            }
        }
    }

    /// The standard's four penalty rules: runs, 2×2 blocks, finder-like
    /// sequences, and the balance of dark and light.
    fn penalty(&self) -> u32 {
        let n = self.size;
        let mut p = 0u32;
        let at = |x: usize, y: usize, by_row: bool| {
            if by_row {
                self.dark(x, y)
            } else {
                self.dark(y, x)
            }
        };
        for by_row in [true, false] {
            for a in 0..n {
                let mut run = 1;
                for b in 1..n {
                    if at(b, a, by_row) == at(b - 1, a, by_row) {
                        run += 1;
                    } else {
                        if run >= 5 {
                            p += 3 + (run - 5);
                        }
                        run = 1;
                    }
                }
                if run >= 5 {
                    p += 3 + (run - 5);
                }
                // 1:1:3:1:1 with four light modules on one side.
                const A: [bool; 11] = [
                    true, false, true, true, true, false, true, false, false, false, false,
                ];
                for b in 0..n.saturating_sub(10) {
                    let fwd = (0..11).all(|k| at(b + k, a, by_row) == A[k]);
                    let back = (0..11).all(|k| at(b + k, a, by_row) == A[10 - k]);
                    p += 40 * (u32::from(fwd) + u32::from(back));
                }
            }
        }
        for y in 0..n - 1 {
            for x in 0..n - 1 {
                let c = self.dark(x, y);
                if c == self.dark(x + 1, y)
                    && c == self.dark(x, y + 1)
                    && c == self.dark(x + 1, y + 1)
                {
                    p += 3;
                }
            }
        }
        let dark = self.modules.iter().filter(|&&d| d).count();
        let total = n * n;
        // Steps of 5 % away from half dark.
        let k = (dark * 20)
            .abs_diff(total * 10)
            .div_ceil(total)
            .saturating_sub(1);
        p + 10 * k as u32
    }
}

/// Bits of the character count for byte mode.
fn count_bits(version: usize) -> usize {
    if version < 10 {
        8
    } else {
        16
    }
}

/// Data codewords of `version` at level M.
fn data_capacity(version: usize) -> usize {
    let (_, short, len, long) = BLOCKS_M[version - 1];
    short * len + long * (len + 1)
}

/// Mode, count, bytes, terminator, padding: the data codewords.
fn data_codewords(version: usize, data: &[u8]) -> Vec<u8> {
    let cap = data_capacity(version);
    let mut bits = Bits::default();
    bits.push(0b0100, 4);
    bits.push(data.len() as u32, count_bits(version));
    for &b in data {
        bits.push(u32::from(b), 8);
    }
    let room = cap * 8 - bits.len;
    bits.push(0, room.min(4));
    let pad = (8 - bits.len % 8) % 8;
    bits.push(0, pad);
    let mut out = bits.bytes;
    for fill in [0xEC, 0x11].into_iter().cycle() {
        if out.len() >= cap {
            break;
        }
        out.push(fill);
    }
    out
}

/// A bit string, most significant bit first.
#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
    len: usize,
}

impl Bits {
    fn push(&mut self, value: u32, n: usize) {
        for i in (0..n).rev() {
            if self.len % 8 == 0 {
                self.bytes.push(0);
            }
            if value >> i & 1 == 1 {
                *self.bytes.last_mut().expect("pushed above") |= 0x80 >> (self.len % 8);
            }
            self.len += 1;
        }
    }
}

/// Split into blocks, add each block's error correction, interleave.
fn with_ec(version: usize, data: &[u8]) -> Vec<u8> {
    let (ec_len, short, len, long) = BLOCKS_M[version - 1];
    let gen = generator(ec_len);
    let mut blocks: Vec<(&[u8], Vec<u8>)> = Vec::new();
    let mut at = 0;
    for b in 0..short + long {
        let l = if b < short { len } else { len + 1 };
        let d = &data[at..at + l];
        at += l;
        blocks.push((d, remainder(d, &gen)));
    }
    let mut out = Vec::with_capacity(data.len() + ec_len * blocks.len());
    for i in 0..=len {
        for (d, _) in &blocks {
            if let Some(&c) = d.get(i) {
                out.push(c);
            }
        }
    }
    for i in 0..ec_len {
        for (_, e) in &blocks {
            out.push(e[i]);
        }
    }
    out
}

/// Multiply in GF(256) with the QR polynomial x⁸+x⁴+x³+x²+1.
fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut r = 0u8;
    while b != 0 {
        if b & 1 == 1 {
            r ^= a;
        }
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= 0x1D;
        }
        b >>= 1;
    }
    r
}

/// The generator polynomial ∏ (x − αⁱ), i < `degree`, without its leading
/// 1, highest power first.
fn generator(degree: usize) -> Vec<u8> {
    let mut g = vec![0u8; degree];
    g[degree - 1] = 1;
    let mut root = 1u8;
    for _ in 0..degree {
        for j in 0..degree {
            g[j] = gf_mul(g[j], root);
            if j + 1 < degree {
                g[j] ^= g[j + 1];
            }
        }
        root = gf_mul(root, 2);
    }
    g
}

/// The remainder of `data · x^deg` divided by the generator.
fn remainder(data: &[u8], gen: &[u8]) -> Vec<u8> {
    let mut r = vec![0u8; gen.len()];
    for &b in data {
        let factor = b ^ r[0];
        r.remove(0);
        r.push(0);
        for (x, &g) in r.iter_mut().zip(gen) {
            *x ^= gf_mul(g, factor);
        }
    }
    r
}

/// `data`'s BCH check bits: `data · x^bits mod poly`.
fn bch(data: u32, poly: u32, bits: u32) -> u32 {
    let mut r = data << bits;
    let top = 32 - poly.leading_zeros() - 1;
    for i in (top..32).rev() {
        if r >> i & 1 == 1 {
            r ^= poly << (i - top);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_bits_match_the_standard_table() {
        // Level M, mask 0: 101010000010010 (ISO/IEC 18004 table C.1).
        assert_eq!((bch(0, 0x537, 10)) ^ 0x5412, 0b101010000010010);
        // Level M, mask 5: 100000011001110.
        assert_eq!((5 << 10 | bch(5, 0x537, 10)) ^ 0x5412, 0b100000011001110);
        // Version 7's information: 000111110010010100.
        assert_eq!(7 << 12 | bch(7, 0x1F25, 12), 0b000111110010010100);
    }

    #[test]
    fn reed_solomon_of_the_standards_example() {
        // "01234567" at version 1-M (ISO/IEC 18004 annex I).
        let data = [
            0x10, 0x20, 0x0C, 0x56, 0x61, 0x80, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11,
            0xEC, 0x11,
        ];
        let ec = remainder(&data, &generator(10));
        assert_eq!(
            ec,
            [0xA5, 0x24, 0xD4, 0xC1, 0xED, 0x36, 0xC7, 0x87, 0x2C, 0x55]
        );
    }

    #[test]
    fn versions_grow_with_the_text_and_stop_at_ten() {
        assert_eq!(Qr::encode(b"").unwrap().version, 1);
        assert_eq!(Qr::encode(&[b'a'; 14]).unwrap().version, 1);
        assert_eq!(Qr::encode(&[b'a'; 15]).unwrap().version, 2);
        assert_eq!(Qr::encode(&[b'a'; 213]).unwrap().version, 10);
        assert_eq!(Qr::encode(&[b'a'; 214]), Err(TooLong));
        let q = Qr::encode(b"https://example.org/#receive=abc").unwrap();
        assert_eq!(q.size, 17 + 4 * q.version);
        // Finder corners are dark, their separators light.
        assert!(q.dark(0, 0) && q.dark(q.size - 1, 0) && q.dark(0, q.size - 1));
        assert!(!q.dark(7, 7));
    }
}
