/// Filecoin's gas constants and fee rules, from Lotus (build/params_shared_vals.go,
/// chain/vm/burn.go, chain/store/basefee.go) and FIP-0115. Amounts are attoFIL in `Int128`:
/// a base fee times a gas limit can pass `Int64`.
public enum Filecoin {
    public static let epochSeconds: Int64 = 30
    public static let blocksPerTipset: Int64 = 5
    public static let blockGasLimit: Int64 = 10_000_000_000
    public static let blockGasTarget: Int64 = 5_000_000_000
    public static let minimumBaseFee: Int128 = 100
    public static let baseFeeMaxChangeDenom: Int128 = 8
    /// Lotus's minimum gas premium (attoFIL per gas unit).
    public static let premiumFloor: Int128 = 100_000
    /// A message may use at most a quarter of a block (the policy keeps batches under it).
    public static let messageGasLimitMax: Int64 = blockGasLimit / 4
}

/// Gas of one addPieces-style message carrying K uploads: `G0 + g1·K` (mainnet 30-day fit).
public struct BatchGasModel: Sendable, Equatable {
    public var fixedGas: Int64
    public var perItemGas: Int64

    public init(fixedGas: Int64 = 228_700_000, perItemGas: Int64 = 78_200_000) {
        precondition(fixedGas > 0 && perItemGas > 0)
        self.fixedGas = fixedGas
        self.perItemGas = perItemGas
    }

    public static let addPieces = BatchGasModel()

    public func gasUsed(items: Int) -> Int64 {
        precondition(items >= 1)
        return fixedGas + perItemGas * Int64(items)
    }

    /// Lotus's estimate: GasLimit = 1.25 × GasUsed.
    public func gasLimit(items: Int) -> Int64 {
        gasUsed(items: items) * 5 / 4
    }

    /// The largest batch whose message stays under `Filecoin.messageGasLimitMax`.
    public var itemsPerMessageMax: Int {
        Int((Filecoin.messageGasLimitMax * 4 / 5 - fixedGas) / perItemGas)
    }

    /// The share of gas a batch of K saves against K single messages, in parts per million:
    /// `f·(1 − 1/K)` with `f = G0 / (G0 + g1)`. Derived from the model, never a constant.
    public func savingsPPM(items k: Int) -> Int64 {
        precondition(k >= 1)
        let single = fixedGas + perItemGas
        let batched = gasUsed(items: k)
        let individual = single * Int64(k)
        return (individual - batched) * 1_000_000 / individual
    }
}

/// What one message costs, split as Lotus's burn.go does.
public struct MessageFee: Sendable, Equatable {
    public var baseFeeBurn: Int128
    public var overEstimationBurn: Int128
    public var minerTip: Int128

    public var total: Int128 { baseFeeBurn + overEstimationBurn + minerTip }

    public init(baseFeeBurn: Int128, overEstimationBurn: Int128, minerTip: Int128) {
        self.baseFeeBurn = baseFeeBurn
        self.overEstimationBurn = overEstimationBurn
        self.minerTip = minerTip
    }

    /// - Parameters: baseFee, feeCap, premium in attoFIL per gas; gas in units.
    public static func compute(baseFee: Int128, feeCap: Int128, premium: Int128, gasLimit: Int64, gasUsed: Int64) -> MessageFee {
        precondition(gasLimit >= gasUsed && gasUsed >= 0)
        let bf = min(baseFee, feeCap)
        let tipPerGas = max(0, min(premium, feeCap - bf))
        return MessageFee(
            baseFeeBurn: bf * Int128(gasUsed),
            overEstimationBurn: bf * Int128(overEstimationGas(gasLimit: gasLimit, gasUsed: gasUsed)),
            minerTip: tipPerGas * Int128(gasLimit))
    }

    /// burn.go ComputeGasOverestimationBurn: gas burned for asking far more than was used.
    public static func overEstimationGas(gasLimit: Int64, gasUsed: Int64) -> Int64 {
        if gasUsed == 0 { return 0 }
        var over = gasLimit - (11 * gasUsed) / 10
        if over < 0 { return 0 }
        if over > gasUsed { over = gasUsed }
        return Int64((Int128(gasLimit - gasUsed) * Int128(over)) / Int128(gasUsed))
    }

    /// Lotus's default fee cap: `baseFee · 1.125^20 + premium` (the base fee can rise 12.5% per epoch).
    public static func defaultFeeCap(baseFee: Int128, premium: Int128) -> Int128 {
        var cap = baseFee
        for _ in 0..<20 { cap = cap * 9 / 8 }
        return cap + premium
    }
}

/// How the base fee moves from one tipset to the next.
public enum BaseFeeRule: String, Sendable, Codable, CaseIterable {
    /// Before network version 28: driven by how full blocks are against the target.
    case preNV28 = "pre-nv28"
    /// FIP-0115 (nv28 on): driven by the 20th-percentile premium of included messages.
    case fip0115

    /// - Parameters:
    ///   - base: this tipset's base fee.
    ///   - gasLimitSum: the sum of unique messages' gas limits in the tipset.
    ///   - blocks: blocks in the tipset (≥ 1).
    ///   - p20Premium: gas-limit-weighted 20th-percentile effective premium (FIP-0115 only).
    public func next(base: Int128, gasLimitSum: Int64, blocks: Int64, p20Premium: Int128) -> Int128 {
        precondition(blocks >= 1 && base >= 0)
        switch self {
        case .preNV28:
            let target = Int128(Filecoin.blockGasTarget)
            var delta = Int128(gasLimitSum / blocks) - target
            delta = min(max(delta, -target), target)
            // Lotus's big.Div is Go's Euclidean division: a fall rounds down, not toward zero.
            let change = Self.floorDiv(Self.floorDiv(base * delta, target), Filecoin.baseFeeMaxChangeDenom)
            return max(Filecoin.minimumBaseFee, base + change)
        case .fip0115:
            let maxAdj = Self.maxAdjustment(base: base)
            return max(Filecoin.minimumBaseFee, base + min(maxAdj, p20Premium - maxAdj))
        }
    }

    /// FIP-0115's MaxAdj: the most the base fee moves in one epoch, ceil(base / 8). A P20 premium
    /// of exactly this leaves the base fee where it is.
    public static func maxAdjustment(base: Int128) -> Int128 {
        (base + Filecoin.baseFeeMaxChangeDenom - 1) / Filecoin.baseFeeMaxChangeDenom
    }

    /// `a / b` rounded toward minus infinity (b > 0), as Go's `big.Int.Div` and Lotus's `big.Div`.
    static func floorDiv(_ a: Int128, _ b: Int128) -> Int128 {
        precondition(b > 0)
        let q = a / b
        return a % b < 0 ? q - 1 : q
    }

    /// The base fee the next tipset's messages pay, computed from this one's as Lotus's
    /// `ComputeBaseFee` does (chain/store/basefee.go; FIP-0115's part as in its test vectors).
    /// - Parameters:
    ///   - parentBaseFee: what this tipset's messages paid (its blocks' `ParentBaseFee`).
    ///   - blocks: each block's messages; a message can be in several blocks. Before nv28 each
    ///     unique message (by CID) counts its gas limit once; under FIP-0115 each unique message
    ///     (by sender and nonce) is weighed by its gas limit at its effective premium.
    public func next(parentBaseFee: Int128, blocks: [[TipsetMessage]]) -> Int128 {
        precondition(!blocks.isEmpty)
        var seen = Set<String>()
        var unique: [TipsetMessage] = []
        for message in blocks.joined() where seen.insert(self == .preNV28 ? message.cid : "\(message.from)/\(message.nonce)").inserted {
            unique.append(message)
        }
        switch self {
        case .preNV28:
            let sum = unique.reduce(Int64(0)) { $0 + $1.gasLimit }
            return next(base: parentBaseFee, gasLimitSum: sum, blocks: Int64(blocks.count), p20Premium: 0)
        case .fip0115:
            let premium = Self.percentilePremium(unique.map { ($0.gasLimit, $0.effectivePremium(baseFee: parentBaseFee)) })
            return next(base: parentBaseFee, gasLimitSum: 0, blocks: Int64(blocks.count), p20Premium: premium)
        }
    }

    /// FIP-0115's premium: rank the messages' gas by effective premium, highest first, over the
    /// top `BlockGasLimit` of gas (padded with zero premiums when there is less); the premium at
    /// its 20th percentile from the bottom is the one at gas index BlockGasLimit·80/100 − 1 from
    /// the top. Zero when the messages hold no more gas than that.
    public static func percentilePremium(_ messages: [(gasLimit: Int64, premium: Int128)]) -> Int128 {
        let index = Int128(Filecoin.blockGasLimit) * 80 / 100 - 1
        var above: Int128 = 0
        for m in messages.sorted(by: { $0.premium > $1.premium }) {
            above += Int128(max(0, m.gasLimit))
            if above > index { return m.premium }
        }
        return 0
    }
}

/// A message as a tipset holds it, for `BaseFeeRule.next(parentBaseFee:blocks:)`.
public struct TipsetMessage: Sendable, Equatable {
    public var cid: String
    public var from: String
    public var nonce: Int64
    public var gasLimit: Int64
    public var feeCap: Int128
    public var premium: Int128

    public init(cid: String, from: String, nonce: Int64, gasLimit: Int64, feeCap: Int128, premium: Int128) {
        self.cid = cid
        self.from = from
        self.nonce = nonce
        self.gasLimit = gasLimit
        self.feeCap = feeCap
        self.premium = premium
    }

    /// Lotus's EffectiveGasPremium: the premium, or what the fee cap leaves above the base fee if
    /// that is less (below zero when the fee cap is under the base fee).
    public func effectivePremium(baseFee: Int128) -> Int128 {
        min(premium, feeCap - baseFee)
    }
}
