import CreditsCore
import Foundation
import Synchronization

/// A deterministic Filecoin on virtual time: 30 s epochs on the injected clock, the base fee moved
/// by either rule from simulated demand, messages included when their fee cap covers the base
/// fee, fees split as burn.go does, and failures injected at configured rates.
///
/// Demand is a random process (a simulation input, not money), so it uses `Double`; every fee
/// is integer attoFIL.
public final class SimulatedChain: ChainClient, Sendable {
    public enum Trace: String, Sendable, CaseIterable, Codable {
        /// Demand near the block target: the base fee wanders slowly.
        case calm
        /// Heavy demand: the base fee stands about 30× calm's, with wide swings.
        case busy
        /// Calm with sudden bursts that drive the base fee up for a while, then decay.
        case spiky

        /// The trace's steady base fee as log10 of its multiple of `Config.startBaseFee`: where
        /// mean demand meets the block target and the base fee stops drifting.
        public var steadyLevel: Double { self == .busy ? 1.5 : 0 }

        /// `base` × 10^steadyLevel, in integers.
        func steadyBaseFee(_ base: Int128) -> Int128 {
            self == .busy ? base * 31_623 / 1_000 : base
        }
    }

    public struct Config: Sendable {
        public var trace: Trace = .calm
        public var rule: BaseFeeRule = .preNV28
        public var seed: UInt64 = 1
        /// Calm's steady base fee; each trace starts the day at its own steady level (busy's is
        /// about 31.6× this) unless `startAtCalmLevel`.
        public var startBaseFee: Int128 = 100_000_000
        /// Busy only: start at calm's level and climb to busy's over the day (about 20× in ten
        /// hours), the busy trace before 2026-12-01: a market that rises all day.
        public var startAtCalmLevel = false
        /// Probability that a landed message reverts.
        public var revertRatePPM: Int64 = 0
        /// Probability that a pushed message never lands unless replaced.
        public var stuckRatePPM: Int64 = 0
        /// Probability that a call fails with a retryable RPC error.
        public var rpcErrorRatePPM: Int64 = 0
        public var gas: BatchGasModel = .addPieces
        public var genesisMs: Int64 = 0
        /// Epoch length; Filecoin's is 30 s. A shorter one makes a local demo quick.
        public var epochMs: Int64 = Filecoin.epochSeconds * 1_000

        public init() {}
    }

    struct Pending: Sendable {
        var message: ChainMessage
        var stuck: Bool
        var nonce: Int64
    }

    struct State: Sendable {
        var height: Int64 = 0
        var baseFee: Int128
        /// The market's draws (demand, spikes): the same for a seed whatever the chain is asked.
        var market: SplitMix64
        /// The failures' draws (reverts, stuck messages, RPC errors), apart from the market's, so
        /// that injecting failures, or calling the chain more or less often, leaves the day's
        /// base fees as they were. Until 2026-12-04 one stream drew both: a run with failures
        /// had another market than the same seed without them.
        var failures: SplitMix64
        var demand: Double = 1.0
        var spikeLeft = 0
        var pending: [String: Pending] = [:]
        var receipts: [String: ChainReceipt] = [:]
        var nextCid = 1
        /// Every CID's sender nonce, and the CID that landed for a nonce.
        var nonces: [String: Int64] = [:]
        var landed: [Int64: String] = [:]
        /// Every message pushed, by CID.
        var messages: [String: ChainMessage] = [:]
        var nextNonce: Int64 = 0
        /// Base fee at every height, for tests and the hindsight optimum.
        var baseFees: [Int128] = []
        /// What set each height's base fee from the one before (index = height), for a fake
        /// node that serves the tipsets' messages.
        var demands: [TipsetDemand] = []
    }

    /// The demand a tipset carried, which moved the base fee to the next height's: the unique
    /// messages' gas limits (pre-nv28) and the P20 premium (FIP-0115). Height 0's leaves the
    /// start unchanged under either rule.
    public struct TipsetDemand: Sendable, Equatable {
        public var gasLimitSum: Int64
        public var p20Premium: Int128
    }

    public let config: Config
    private let clock: WallClock
    private let state: Mutex<State>

    public init(config: Config, clock: WallClock) {
        self.config = config
        self.clock = clock
        let start = config.startAtCalmLevel ? config.startBaseFee : config.trace.steadyBaseFee(config.startBaseFee)
        let steady = TipsetDemand(gasLimitSum: Filecoin.blockGasTarget * Filecoin.blocksPerTipset,
                                  p20Premium: BaseFeeRule.maxAdjustment(base: start))
        state = Mutex(State(baseFee: start, market: SplitMix64(seed: config.seed),
                           failures: SplitMix64(seed: config.seed ^ 0x5EED_FA11_0000_0000),
                           baseFees: [start], demands: [steady]))
    }

    public func head() async throws -> ChainHead {
        try state.withLock { s in
            advance(&s)
            try maybeFail(&s)
            return ChainHead(height: s.height, baseFee: s.baseFee)
        }
    }

    /// `push`, with the CID the message gets chosen by the caller (a fake node that signs
    /// messages itself names them before they are sent); nil lets the chain name it.
    public func push(_ message: ChainMessage, cid: String?) async throws -> String {
        try state.withLock { s in
            advance(&s)
            try maybeFail(&s)
            if message.gasLimit > Filecoin.messageGasLimitMax { throw ChainError("gas limit over a quarter block", retryable: false) }
            if let cid, s.nonces[cid] != nil { throw ChainError("message \(cid) already in mpool", retryable: false) }
            let nonce = s.nextNonce
            s.nextNonce += 1
            return add(message, nonce: nonce, cid: cid, &s)
        }
    }

    public func replace(_ cid: String, with message: ChainMessage) async throws -> String {
        try await replace(cid, with: message, newCid: nil)
    }

    /// Names the message, lets the caller record it, then sends it (a throwing `record` sends
    /// nothing).
    public func push(_ message: ChainMessage, recordingFirst record: @Sendable (String) async throws -> Void) async throws -> String {
        let cid = state.withLock { s -> String in
            s.nextCid += 1
            return "bafysim\(config.seed)x\(s.nextCid - 1)"
        }
        try await record(cid)
        return try await push(message, cid: cid)
    }

    public func knows(cid: String) async throws -> Bool {
        state.withLock { $0.nonces[cid] != nil }
    }

    /// `replace`, with the new message's CID chosen by the caller (see `push(_:cid:)`).
    public func replace(_ cid: String, with message: ChainMessage, newCid: String?) async throws -> String {
        try state.withLock { s in
            advance(&s)
            try maybeFail(&s)
            guard let old = s.pending[cid] else { throw ChainError("message \(cid) is not pending: nothing to replace", retryable: false) }
            // As Lotus's mpool: a replacement must raise the premium by at least 25%.
            guard message.premium * 4 >= old.message.premium * 5 else {
                throw ChainError("replacement premium below 1.25x", retryable: false)
            }
            if let newCid, s.nonces[newCid] != nil { throw ChainError("message \(newCid) already in mpool", retryable: false) }
            s.pending[cid] = nil
            return add(message, nonce: old.nonce, cid: newCid, &s)
        }
    }

    private func add(_ message: ChainMessage, nonce: Int64, cid chosen: String?, _ s: inout State) -> String {
        let cid = chosen ?? "bafysim\(config.seed)x\(s.nextCid)"
        s.nextCid += 1
        s.messages[cid] = message
        s.pending[cid] = Pending(message: message, stuck: s.failures.chance(ppm: config.stuckRatePPM), nonce: nonce)
        s.nonces[cid] = nonce
        return cid
    }

    public func receipt(cid: String) async throws -> ChainReceipt? {
        try state.withLock { s in
            advance(&s)
            try maybeFail(&s)
            guard let nonce = s.nonces[cid], let landed = s.landed[nonce] else { return nil }
            return s.receipts[landed]
        }
    }

    /// The sender nonce a message was pushed under (nil for a CID this chain never saw).
    public func nonce(of cid: String) -> Int64? {
        state.withLock { $0.nonces[cid] }
    }

    /// Every message that landed, in nonce order, and whether it reverted: what the sender paid
    /// gas for (tests check that no upload was stored twice).
    public func landedMessages() -> [(cid: String, message: ChainMessage, reverted: Bool)] {
        state.withLock { s in
            advance(&s)
            return s.landed.sorted { $0.key < $1.key }.compactMap { _, cid in
                s.messages[cid].map { (cid, $0, (s.receipts[cid]?.exitCode ?? 0) != 0) }
            }
        }
    }

    /// The base fees of the first `epochs` epochs of a chain with this config (its start's
    /// included), drawn on their own: `simulate` hands the policy a week of another seed's as the
    /// chain's recent history.
    public static func baseFees(config: Config, epochs: Int) -> [Int128] {
        let chain = SimulatedChain(config: config, clock: WallClock { 0 })
        return chain.state.withLock { s in
            for _ in 0..<epochs { chain.epoch(&s) }
            return s.baseFees
        }
    }

    /// The base fees of the heights it has reached (index = height) within `heights`.
    public func baseFees(heights: ClosedRange<Int64>) async throws -> [Int128] {
        let all = baseFeeHistory()
        let low = Int(max(0, heights.lowerBound)), high = Int(min(Int64(all.count - 1), heights.upperBound))
        return low <= high ? Array(all[low...high]) : []
    }

    /// The base fee at each height so far (index = height).
    public func baseFeeHistory() -> [Int128] {
        state.withLock { s in
            advance(&s)
            return s.baseFees
        }
    }

    /// The demand of each height reached (index = height) within `heights`: tipset h's moved the
    /// base fee from `baseFeeHistory()[h − 1]` to `[h]`.
    public func demands(heights: ClosedRange<Int64>) -> [TipsetDemand] {
        state.withLock { s in
            advance(&s)
            let low = Int(max(0, heights.lowerBound)), high = Int(min(Int64(s.demands.count - 1), heights.upperBound))
            return low <= high ? Array(s.demands[low...high]) : []
        }
    }

    /// Runs every epoch up to the clock's height.
    private func advance(_ s: inout State) {
        let target = (clock.nowMs() - config.genesisMs) / config.epochMs
        while s.height < target { epoch(&s) }
    }

    /// One tipset: include what the base fee allows, then move the base fee.
    private func epoch(_ s: inout State) {
        s.height += 1
        for (cid, p) in s.pending.sorted(by: { $0.key < $1.key }) where !p.stuck && p.message.feeCap >= s.baseFee {
            let gasUsed = p.message.gasLimit * 4 / 5
            let reverted = s.failures.chance(ppm: config.revertRatePPM)
            let cost = MessageFee.compute(baseFee: s.baseFee, feeCap: p.message.feeCap, premium: p.message.premium,
                                          gasLimit: p.message.gasLimit, gasUsed: gasUsed)
            s.receipts[cid] = ChainReceipt(messageCid: cid, exitCode: reverted ? 33 : 0, gasUsed: gasUsed, height: s.height, cost: cost)
            s.landed[p.nonce] = cid
            s.pending[cid] = nil
        }
        let fullness = nextDemand(&s)
        let target = Double(Filecoin.blockGasTarget * Filecoin.blocksPerTipset)
        let gasLimitSum = Int64(max(0, min(2.0, fullness)) * target)
        let maxAdj = BaseFeeRule.maxAdjustment(base: s.baseFee)
        // FIP-0115: premiums bid by others track demand; at target the P20 premium equals MaxAdj.
        let p20 = Int128(max(0.0, 1.0 + 8.0 * (fullness - 1.0)) * 1_000_000) * maxAdj / 1_000_000
        s.baseFee = config.rule.next(base: s.baseFee, gasLimitSum: gasLimitSum, blocks: Filecoin.blocksPerTipset, p20Premium: p20)
        s.baseFees.append(s.baseFee)
        s.demands.append(TipsetDemand(gasLimitSum: gasLimitSum, p20Premium: p20))
    }

    /// Block fullness relative to the target (1.0 = at target), per trace. `scripts/online-bound`
    /// repeats this model (and the spike odds and lengths): change both together.
    private func nextDemand(_ s: inout State) -> Double {
        let noise = s.market.uniform() - 0.5
        // Mean reversion toward the trace's steady level keeps a day's base fee within realistic
        // bounds; `level` is 0 there.
        let level = log10(Double(s.baseFee)) - log10(Double(config.startBaseFee)) - config.trace.steadyLevel
        switch config.trace {
        case .calm:
            return 1.0 + 0.08 * noise - 0.05 * level
        case .busy:
            return 1.0 + 0.30 * noise - 0.04 * level
        case .spiky:
            if s.spikeLeft > 0 {
                s.spikeLeft -= 1
                return 1.6
            }
            if s.market.chance(ppm: 4_000) { s.spikeLeft = 10 + Int(s.market.next() % 30) }
            return 1.0 + 0.08 * noise - 0.08 * level
        }
    }

    private func maybeFail(_ s: inout State) throws {
        if s.failures.chance(ppm: config.rpcErrorRatePPM) { throw ChainError("simulated RPC error", retryable: true) }
    }
}
