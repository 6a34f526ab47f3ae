/// SplitMix64: a small, fast random generator, deterministic from its seed, so simulations,
/// jitter and property tests replay exactly. Not for secrets.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// True with probability `ppm` parts per million.
    public mutating func chance(ppm: Int64) -> Bool {
        ppm > 0 && Int64(next() % 1_000_000) < ppm
    }

    /// Uniform in [0, 1): for simulated demand, never for money.
    public mutating func uniform() -> Double {
        Double(next() >> 11) / Double(1 << 53)
    }
}
