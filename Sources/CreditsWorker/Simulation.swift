import CreditsChain
import CreditsCore
import CreditsStore
import Foundation
import Logging
import Synchronization

/// A clock that only moves when told: virtual time for simulations.
public final class VirtualClock: Sendable {
    private let ms: Mutex<Int64>

    public init(startMs: Int64) { ms = Mutex(startMs) }

    public var nowMs: Int64 { ms.withLock { $0 } }
    public func advance(ms delta: Int64) { ms.withLock { $0 += delta } }
    public var wallClock: WallClock { WallClock { [self] in self.nowMs } }
}

/// `credits simulate`: the real policy, gas manager and ledger on virtual time against the
/// simulated chain, compared with a hindsight schedule that knows the whole base-fee trace.
public enum Simulation {
    public struct Config: Sendable {
        public var days: Int = 1
        /// Overrides `days` when set (tests run a few hours).
        public var hours: Int?
        public var uploadsPerHour: Int = 120
        public var trace: SimulatedChain.Trace = .calm
        /// See `SimulatedChain.Config.startAtCalmLevel`.
        public var startAtCalmLevel = false
        public var rule: BaseFeeRule = .preNV28
        public var seed: UInt64 = 1
        /// Shares of messages that revert, and that are stuck (never land unless replaced), and
        /// of chain calls that fail with a retryable RPC error (`SimulatedChain.Config`).
        public var failureRatePPM: Int64 = 0
        public var stuckRatePPM: Int64 = 0
        public var rpcErrorRatePPM: Int64 = 0
        public var users = 50
        public var policy = BatchPolicy.Config()
        /// In model mode (`policy.model`), days of the market's base fees the policy is handed
        /// before the run, as a node serves the chain's recent history: drawn by a chain of the
        /// same trace and rule from another seed (so the run's own trace is the rule mode's).
        public var historyDays = 7
        /// Where to write the run's base-fee trace and upload windows (`Dump`), for
        /// `scripts/online-bound`; nil writes nothing.
        public var dumpPath: String?

        public init() {}
    }

    /// What `scripts/online-bound` reads: the base fee at every height (index = height; a message
    /// sent at height t pays `baseFees[t]`), each upload's sending window, and the two costs.
    public struct Dump: Codable, Sendable {
        public var trace: String
        public var rule: String
        public var seed: UInt64
        public var startAtCalmLevel: Bool
        public var fixedGas: Int64
        public var perItemGas: Int64
        public var premium: String
        public var baseFees: [String]
        /// [first epoch, last epoch] an upload could be sent at, in arrival order.
        public var windows: [[Int64]]
        public var hindsightCostAttoFil: String
        public var actualCostAttoFil: String
        /// [height sent at, uploads] of each confirmed message, and of the hindsight schedule's.
        public var actualMessages: [[Int64]]
        public var hindsightMessages: [[Int64]]
        /// The height each upload (in arrival order) was confirmed from, by the policy and by the
        /// hindsight schedule (-1: never).
        public var actualSentAt: [Int64]
        public var hindsightSentAt: [Int64]
    }

    public struct Report: Sendable, Codable, Equatable {
        public var trace: String
        public var days: Int
        /// The simulated hours (`hours` when set, else 24 × `days`).
        public var hours: Int
        public var uploads: Int
        public var batches: Int
        public var meanBatchSizeHundredths: Int64
        public var individualCostAttoFil: String
        public var actualCostAttoFil: String
        public var batchingSavingsPPM: Int64
        /// What the gas model predicts for the batch sizes achieved: Σ individual·f(1−1/K) / Σ individual.
        public var modelBatchingSavingsPPM: Int64
        public var timingSavingsPPM: Int64
        public var deadlineMisses: Int
        public var failedMessages: Int
        /// How the uploads ended, from their rows: confirmed, refunded (with the credits their
        /// holds had), or neither (still queued, batched, submitted or failed when the run ended).
        public var confirmedUploads: Int
        public var refundedUploads: Int
        public var refundedCredits: Int64
        public var unsettledUploads: Int
        /// Confirmed uploads that landed messages carried other than once (none: no message on
        /// record; two or more: stored twice). Always 0 unless something is broken.
        public var confirmedNotInOneMessage: Int
        /// Refunded uploads that a message stored anyway (it landed after the refund): the
        /// platform paid their gas and charged nothing. Rare, and not a broken ledger.
        public var storedAfterRefund: Int
        /// The credits held when the uploads were queued, what the ledger gave back (measured from
        /// the users' available balances: funding − held + released), and what it still holds.
        public var heldCredits: Int64
        public var releasedCredits: Int64
        public var creditsHeldAtEnd: Int64
        public var hindsightCostAttoFil: String
        public var ratioToHindsightPPM: Int64
        public var reconcileOk: Bool
        /// The base fee over the run: min, median, max (attoFIL per gas).
        public var baseFeeMin: String
        public var baseFeeMedian: String
        public var baseFeeMax: String

        /// Every upload ended confirmed (carried by exactly one landed message) or refunded,
        /// nothing is still held, and the holds the ledger released are exactly the refunded
        /// uploads' credits.
        public var settledOk: Bool {
            unsettledUploads == 0 && confirmedNotInOneMessage == 0 && creditsHeldAtEnd == 0
                && releasedCredits == refundedCredits
        }
    }

    /// When each upload was first sent: the earliest row, by the uploads it names, of a message
    /// the chain took. A row closed `unsent` (its push failed, or the process stopped before it)
    /// sent nothing: until 2026-12-04 it counted, and a push that failed at an upload's deadline,
    /// retried after it, was not a miss.
    public static func firstSent(_ txs: [GasTransaction]) -> [String: Int64] {
        var first: [String: Int64] = [:]
        for tx in txs where tx.status != .unsent {
            for id in tx.uploadIds where first[id].map({ tx.createdAtMs < $0 }) ?? true { first[id] = tx.createdAtMs }
        }
        return first
    }

    public static func run(_ config: Config, databasePath: String) async throws -> Report {
        let start: Int64 = 1_700_000_000_000
        let clock = VirtualClock(startMs: start)
        let store = try SQLiteStore(path: databasePath, clock: clock.wallClock)
        var chainConfig = SimulatedChain.Config()
        chainConfig.trace = config.trace
        chainConfig.startAtCalmLevel = config.startAtCalmLevel
        chainConfig.rule = config.rule
        chainConfig.seed = config.seed
        chainConfig.revertRatePPM = config.failureRatePPM
        chainConfig.stuckRatePPM = config.stuckRatePPM
        chainConfig.rpcErrorRatePPM = config.rpcErrorRatePPM
        chainConfig.genesisMs = start
        let chain = SimulatedChain(config: chainConfig, clock: clock.wallClock)
        var managerConfig = FilecoinGasManager.Config()
        managerConfig.seed = config.seed
        managerConfig.policy = config.policy
        // The report counts the failures; a warning for each (an RPC error at every tenth call,
        // say) would bury it. Errors are still logged.
        var logger = Logger(label: "credits.gas")
        logger.logLevel = .error
        let manager = FilecoinGasManager(store: store, chain: chain, clock: clock.wallClock, config: managerConfig, logger: logger)
        let policy = managerConfig.policy
        let epochMs = Filecoin.epochSeconds * 1_000
        if policy.model != nil, config.historyDays > 0 {
            var past = chainConfig
            past.seed = config.seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
            past.revertRatePPM = 0
            past.stuckRatePPM = 0
            past.rpcErrorRatePPM = 0
            await manager.remember(baseFees: SimulatedChain.baseFees(config: past, epochs: config.historyDays * 2_880 - 1))
        }

        let funding: Int64 = 1_000_000_000
        for u in 0..<config.users {
            _ = try await store.execute(.adjust(AdjustmentRequest(
                userId: "sim_u\(u)", credits: funding, adjustmentId: "sim_fund_\(u)", reason: "simulation")),
                idempotencyKey: nil)
        }
        var held: Int64 = 0
        var rng = SplitMix64(seed: config.seed &* 7_919 &+ 11)
        struct Arrival { var id: String; var epoch: Int64; var deadlineMs: Int64; var queuedAtMs: Int64 }
        var arrivals: [Arrival] = []
        let epochs = Int64(config.hours ?? config.days * 24) * 3_600_000 / epochMs
        let perEpoch = Double(config.uploadsPerHour) * Double(epochMs) / 3_600_000
        var credit = 0.0
        let drainEpochs = (policy.deadlineMs.values.max() ?? 0) / epochMs + 600
        for epoch in 0..<(epochs + drainEpochs) {
            clock.advance(ms: epochMs)
            if epoch < epochs {
                credit += perEpoch
                while credit >= 1 {
                    credit -= 1
                    let n = arrivals.count
                    let roll = rng.next() % 10
                    let priority: UploadPriority = roll < 2 ? .high : roll < 7 ? .medium : .low
                    let type = ["audio", "audio", "video", "album"][Int(rng.next() % 4)]
                    let id = "sim_\(config.seed)_\(n)"
                    let queued = try await manager.queueUpload(UploadRequest(
                        uploadId: id, userId: "sim_u\(n % config.users)", fileType: type, sizeBytes: 1_000_000, priority: priority))
                    guard case .queued(let receipt) = queued.outcome else {
                        throw CreditsError(.internal, "simulate: upload \(id) was not queued")
                    }
                    held += receipt.creditsReserved
                    arrivals.append(Arrival(id: id, epoch: epoch + 1, deadlineMs: policy.deadlineMs[priority]!, queuedAtMs: clock.nowMs))
                }
            }
            await manager.step()
        }

        let txs = try await store.gasTransactions(sinceMs: 0, limit: 10_000_000)
        let stats = GasStats.compute(txs, usdPerFil: managerConfig.usdPerFil)
        let confirmed = txs.filter { $0.status == .confirmed }
        let firstSend = firstSent(txs)
        let misses = arrivals.filter { a in (firstSend[a.id] ?? Int64.max) >= a.queuedAtMs + a.deadlineMs }.count
        // How each upload ended, from its row, and how many landed messages carried it: a
        // confirmed upload exactly one, a refunded one none (or one that landed after the refund:
        // stored, not charged). Then what the ledger released, from the users' balances alone
        // (available = funding − held + released).
        var confirmedUploads = 0
        var refunded = 0
        var refundedCredits: Int64 = 0
        var unsettled = 0
        var landedIn: [String: Int] = [:]
        for tx in confirmed { for id in tx.uploadIds { landedIn[id, default: 0] += 1 } }
        var confirmedNotInOneMessage = 0
        var storedAfterRefund = 0
        for a in arrivals {
            let u = try await store.upload(uploadId: a.id)
            switch u?.status {
            case .confirmed?:
                confirmedUploads += 1
                if landedIn[a.id] != 1 { confirmedNotInOneMessage += 1 }
            case .refunded?:
                refunded += 1
                refundedCredits += u?.creditsReserved ?? 0
                if landedIn[a.id] != nil { storedAfterRefund += 1 }
            default: unsettled += 1
            }
        }
        var available: Int64 = 0
        var stillHeld: Int64 = 0
        for u in 0..<config.users {
            let b = try await store.balance(userId: "sim_u\(u)")
            available += b.balance
            stillHeld += b.reserved
        }
        let released = available - (funding * Int64(config.users) - held)
        let individual = confirmed.reduce(Int128(0)) { $0 + $1.individualCost }
        let expected = confirmed.reduce(Int128(0)) { $0 + $1.individualCost * Int128(managerConfig.gas.savingsPPM(items: $1.uploadIds.count)) }
        let actual = Int128(stats.gasSpentAttoFil) ?? 0
        let timing = Int128(stats.timingSavingsAttoFil) ?? 0

        // Hindsight: each upload's window [arrival, deadline) on the known trace, scheduled
        // offline (`Hindsight`).
        let fees = chain.baseFeeHistory()
        let windows = arrivals.map { a in (a.epoch, a.epoch + a.deadlineMs / epochMs - 1) }
        let schedule = Hindsight.schedule(windows: windows, fees: fees, gas: managerConfig.gas, premium: managerConfig.premium,
                                          batchMax: policy.itemsPerBatchMax)
        let hindsight = Hindsight.cost(schedule, fees: fees, gas: managerConfig.gas, premium: managerConfig.premium)
        if let path = config.dumpPath {
            let height = { (tx: GasTransaction) in (tx.createdAtMs - start) / epochMs }
            var sentAt: [String: Int64] = [:]
            for tx in confirmed { for id in tx.uploadIds { sentAt[id] = height(tx) } }
            var hindsightSentAt = [Int64](repeating: -1, count: arrivals.count)
            for m in schedule { for i in m.items { hindsightSentAt[i] = m.epoch } }
            let dump = Dump(trace: config.trace.rawValue, rule: config.rule.rawValue, seed: config.seed,
                            startAtCalmLevel: config.startAtCalmLevel, fixedGas: managerConfig.gas.fixedGas,
                            perItemGas: managerConfig.gas.perItemGas, premium: String(managerConfig.premium),
                            baseFees: fees.map { String($0) }, windows: windows.map { [$0.0, $0.1] },
                            hindsightCostAttoFil: String(hindsight), actualCostAttoFil: String(actual),
                            actualMessages: confirmed.map { [height($0), Int64($0.uploadIds.count)] },
                            hindsightMessages: schedule.map { [$0.epoch, Int64($0.items.count)] },
                            actualSentAt: arrivals.map { sentAt[$0.id] ?? -1 }, hindsightSentAt: hindsightSentAt)
            try JSONEncoder().encode(dump).write(to: URL(fileURLWithPath: path), options: .atomic)
        }
        let report = try await store.reconcile()
        try await store.close()
        return Report(
            trace: config.trace.rawValue, days: config.days, hours: Int(epochs * epochMs / 3_600_000), uploads: arrivals.count, batches: confirmed.count,
            meanBatchSizeHundredths: stats.averageBatchSizeHundredths, individualCostAttoFil: String(individual),
            actualCostAttoFil: String(actual), batchingSavingsPPM: stats.batchingSavingsPPM,
            modelBatchingSavingsPPM: individual == 0 ? 0 : Int64(expected / individual),
            timingSavingsPPM: individual == 0 ? 0 : Int64(timing * 1_000_000 / individual),
            deadlineMisses: misses, failedMessages: txs.filter { $0.status == .failed }.count,
            confirmedUploads: confirmedUploads, refundedUploads: refunded, refundedCredits: refundedCredits,
            unsettledUploads: unsettled, confirmedNotInOneMessage: confirmedNotInOneMessage,
            storedAfterRefund: storedAfterRefund, heldCredits: held, releasedCredits: released, creditsHeldAtEnd: stillHeld,
            hindsightCostAttoFil: String(hindsight),
            ratioToHindsightPPM: hindsight == 0 ? 0 : Int64(actual * 1_000_000 / hindsight), reconcileOk: report.ok,
            baseFeeMin: String(fees.min() ?? 0), baseFeeMedian: String(fees.sorted()[fees.count / 2]),
            baseFeeMax: String(fees.max() ?? 0))
    }
}
