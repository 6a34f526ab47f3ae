/// One chain message and what it cost (`filecoin_gas_transactions`). Amounts in attoFIL.
public struct GasTransaction: Sendable, Equatable {
    public enum Status: String, Sendable, Codable, CaseIterable {
        /// Pushed, no receipt yet.
        case pending
        case confirmed
        /// Reverted or lost; its uploads are retried, split or refunded.
        case failed
        /// Stuck and replaced by a message with a higher premium.
        case replaced
        /// Recorded before sending but never sent (the push failed before the chain took it, or
        /// the process stopped first): no gas, and not counted as a failed message.
        case unsent
    }

    public var id: String
    public var batchId: String
    public var messageCid: String
    public var uploadIds: [String]
    public var gasLimit: Int64
    public var gasUsed: Int64
    public var baseFee: Int128
    public var premium: Int128
    public var feeCap: Int128
    /// What the message cost (burn + over-estimation burn + tip); 0 until confirmed.
    public var totalCost: Int128
    /// What the same uploads would have cost as one message each, at the same base fee.
    public var individualCost: Int128
    /// What the same message would have cost had each upload's share been paid at the base fee
    /// when that upload was queued: the cost of sending at once, for timing savings.
    public var immediateCost: Int128
    public var status: Status
    public var attempt: Int
    public var failureReason: String?
    public var createdAtMs: Int64
    public var updatedAtMs: Int64

    public init(id: String, batchId: String, messageCid: String, uploadIds: [String], gasLimit: Int64, gasUsed: Int64,
                baseFee: Int128, premium: Int128, feeCap: Int128, totalCost: Int128, individualCost: Int128,
                immediateCost: Int128, status: Status, attempt: Int, failureReason: String?, createdAtMs: Int64,
                updatedAtMs: Int64) {
        self.id = id
        self.batchId = batchId
        self.messageCid = messageCid
        self.uploadIds = uploadIds
        self.gasLimit = gasLimit
        self.gasUsed = gasUsed
        self.baseFee = baseFee
        self.premium = premium
        self.feeCap = feeCap
        self.totalCost = totalCost
        self.individualCost = individualCost
        self.immediateCost = immediateCost
        self.status = status
        self.attempt = attempt
        self.failureReason = failureReason
        self.createdAtMs = createdAtMs
        self.updatedAtMs = updatedAtMs
    }
}

/// Operators' gas figures over a window (API.md `gas-stats`), computed from confirmed messages.
public struct GasStats: Sendable, Codable, Equatable {
    public var batches: Int
    public var uploads: Int
    /// Uploads per confirmed message, in hundredths (512 = 5.12).
    public var averageBatchSizeHundredths: Int64
    /// Confirmed messages / finished messages, in parts per million.
    public var successRatePPM: Int64
    public var gasSpentAttoFil: String
    public var individualCostAttoFil: String
    public var batchingSavingsAttoFil: String
    public var timingSavingsAttoFil: String
    public var gasSpentUsdCents: Int64
    public var individualCostUsdCents: Int64
    public var batchingSavingsUsdCents: Int64
    public var timingSavingsUsdCents: Int64
    /// Batching savings as parts per million of the individual cost.
    public var batchingSavingsPPM: Int64

    /// - Parameter usdPerFil: the FIL/USD rate as a decimal (e.g. "3.25").
    public static func compute(_ txs: [GasTransaction], usdPerFil: DecimalRate) -> GasStats {
        let confirmed = txs.filter { $0.status == .confirmed }
        let finished = txs.filter { $0.status == .confirmed || $0.status == .failed }
        // Reverted messages burn gas too: they count as spent.
        let spent = finished.reduce(Int128(0)) { $0 + $1.totalCost }
        let individual = confirmed.reduce(Int128(0)) { $0 + $1.individualCost }
        let immediate = confirmed.reduce(Int128(0)) { $0 + $1.immediateCost }
        let uploads = confirmed.reduce(0) { $0 + $1.uploadIds.count }
        let atSendFee = confirmed.reduce(Int128(0)) { $0 + batchedAtSameFee($1) }
        // Batching: K single messages vs one, both at the base fee when it was sent.
        let batching = individual - atSendFee
        // Timing: each upload's share at the base fee when it was queued vs when its message was sent.
        let timing = immediate - atSendFee
        return GasStats(
            batches: confirmed.count, uploads: uploads,
            averageBatchSizeHundredths: confirmed.isEmpty ? 0 : Int64(uploads * 100 / confirmed.count),
            successRatePPM: finished.isEmpty ? 1_000_000 : Int64(confirmed.count * 1_000_000 / finished.count),
            gasSpentAttoFil: String(spent), individualCostAttoFil: String(individual),
            batchingSavingsAttoFil: String(batching), timingSavingsAttoFil: String(timing),
            gasSpentUsdCents: usdPerFil.cents(attoFil: spent), individualCostUsdCents: usdPerFil.cents(attoFil: individual),
            batchingSavingsUsdCents: usdPerFil.cents(attoFil: batching), timingSavingsUsdCents: usdPerFil.cents(attoFil: timing),
            batchingSavingsPPM: individual == 0 ? 0 : Int64(batching * 1_000_000 / individual))
    }

    /// A message's cost with its tip and over-estimation as paid, at the base fee it was sent
    /// at: comparable with `individualCost`, which is priced at that same base fee.
    public static func batchedAtSameFee(_ tx: GasTransaction) -> Int128 {
        MessageFee.compute(baseFee: tx.baseFee, feeCap: tx.feeCap, premium: tx.premium, gasLimit: tx.gasLimit,
                           gasUsed: tx.gasUsed).total
    }
}

/// A non-negative exchange rate with up to 9 decimals, parsed from text ("3.25") and applied with
/// integer math: cents = floor(attoFIL × rate × 100 / 1e18). No floating point on a money path.
public struct DecimalRate: Sendable, Equatable {
    /// The rate × 1e9.
    public let nanos: Int128

    /// Digits, optionally a point and 1–9 more digits: "5", "0.3", "5.25". No sign: until
    /// 2026-12-05 a minus sign before a zero passed (Int128("-0") is 0), so "-0.5" read as 0.5
    /// (`--fil-usd -0.5` priced FIL at $0.50, `--failure-rate -0.1` ran at 10%).
    public init?(_ text: String) {
        func isDigits(_ s: Substring) -> Bool { !s.isEmpty && s.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, isDigits(parts[0]), let whole = Int128(parts[0]) else { return nil }
        var fraction: Int128 = 0
        if parts.count == 2 {
            let digits = parts[1]
            guard isDigits(digits), digits.count <= 9, let f = Int128(digits) else { return nil }
            fraction = f
            for _ in digits.count..<9 { fraction *= 10 }
        }
        nanos = whole * 1_000_000_000 + fraction
        if nanos > 1_000_000_000_000_000 { return nil }
    }

    /// The FIL/USD rate used when none is configured (reports only; `--fil-usd` sets it).
    public static let defaultUsdPerFil = DecimalRate("5")!

    /// USD cents for an amount of attoFIL, rounded down.
    public func cents(attoFil: Int128) -> Int64 {
        Int64(attoFil * nanos * 100 / 1_000_000_000 / 1_000_000_000_000_000_000)
    }
}
