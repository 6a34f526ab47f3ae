import CreditsChain
import CreditsCore
import CreditsStore
import Logging
import Metrics

/// Sends queued uploads to Filecoin in batches and settles their holds: capture on a confirmed
/// message, retry with backoff on a failed one, replace a stuck one with a higher premium, split a
/// batch that keeps failing into single messages, and release (refund) an upload that fails for
/// good. Decisions come from the pure `BatchPolicy` and `RetrySchedule`; this actor does the I/O.
///
/// Crash safety: money moves only through idempotent ledger operations (`capture:<id>`,
/// `release:<id>`), so a step repeated after a crash cannot charge or refund twice. Uploads caught
/// mid-flight (batched, submitted, failed) are queued again by `recover()` at start-up.
///
/// A failing database: what the manager learns from the chain (a receipt, a replacement, a
/// message it gave up) it writes down as `DatabaseWrite`s, in order. A write that fails is owed:
/// kept, with every later one behind it, and written before the manager does anything else.
/// While it owes writes it sends nothing; a claim whose answer was lost is undone (`unclaim`).
/// So the database lags the manager's memory for as long as it fails, and then catches up; it
/// never loses a receipt or a refund, and an upload is never left stranded mid-flight.
public actor FilecoinGasManager {
    public struct Config: Sendable {
        public var policy = BatchPolicy.Config()
        public var gas = BatchGasModel.addPieces
        public var retry = RetrySchedule()
        public var premium: Int128 = Filecoin.premiumFloor
        /// Epochs without a receipt before a message is replaced with a higher premium.
        public var stuckAfterEpochs: Int64 = 4
        /// Replacements of one message at most; after that the attempt counts as failed.
        public var replacementsMax = 3
        public var usdPerFil = DecimalRate.defaultUsdPerFil
        public var seed: UInt64 = 1
        /// Part of every batch id, so that managers of several instances sharing one database
        /// never name two batches alike, and each knows its own at a restart (`serve` derives it
        /// from the host and port, so it survives restarts; random here unless set).
        public var instanceTag: String = String(UInt32.random(in: .min ... .max), radix: 16)
        /// Uploads another instance left mid-flight are taken over only when untouched this long
        /// (that instance is presumed gone).
        public var takeoverAfterMs: Int64 = 3_600_000
        /// When the head has moved on by more than one height since the last tick, the base fees
        /// of the heights between are asked for (one call per height), at most this many; a
        /// longer gap (the node was unreachable) is left out of the policy's history.
        public var missedHeightsMax: Int64 = 10
        /// How long a message that was given up is still watched in case it lands (from when it
        /// was sent), unless a retry is to replace it. A restart takes back such messages of this
        /// long ago too (`adoptMessages`). Each watched message holds a wait on the node.
        public var givenUpWatchMs: Int64 = 7 * 86_400_000
        /// How long uploads out of attempts (or of messages) stay held, failed, before they are
        /// refunded, while the given-up message they were last sent in is still watched: it may
        /// have landed (the batch's last replacement refused because its nonce was taken, say),
        /// and a node gives its receipt only some epochs later (Lotus: `confidence`). If it lands
        /// meanwhile, they are captured on it instead.
        public var landingGraceMs: Int64 = 600_000
        /// A tick whose head call fails decides with the last head seen, if a tick saw it at
        /// most this many ticks ago (`policy.tickMs` each, to the nearest), so that uploads at
        /// their deadline still go: priced at that head's base fee, which their fee cap
        /// (1.125^20 times it, plus the premium) covers for 20 epochs of the steepest climb.
        /// Nothing is learned from it (as from a late block). 0: a tick without a head sends
        /// nothing.
        public var headStandInTicks: Int64 = 2
        /// A head call that fails within this many milliseconds of the tick's start (a refused
        /// or reset connection, a proxy's error: a fault that may be gone a moment later) is
        /// asked once more in the same tick, before the last head seen stands in. One that took
        /// longer (a timeout) is not: the tick's time is spent. 0: never asked again.
        public var headRetryWithinMs: Int64 = 3_000
        /// Passes a tick makes over the retries due (at least 1). A push that fails, the chain
        /// having taken nothing, with an error that may pass, for uploads whose deadline passes
        /// before the next tick, is tried again in the tick's next pass; so a batch at its last
        /// tick is pushed up to this many times more in it. Each push is one of its
        /// `retry.attemptsMax` attempts.
        public var retryPassesPerTick: Int = 2
        /// How many of the last ticks' decision delays (from a tick's start to its policy
        /// decision: the head call and the reads before it) are kept. The longest of them is
        /// how late in its tick the next decision may come (see `step`). 0: none kept, and the
        /// policy is given the decision time as it is.
        public var decisionDelaysKept: Int = 20

        public init() {}
    }

    struct Known {
        var userId: String
        var queuedAtMs: Int64
        var queuedBaseFee: Int128
        /// When its priority's deadline passes: a push of it that fails before then, the chain
        /// having taken nothing, is tried again by the last tick before it, whatever the backoff
        /// (`retryOrFallBack(dueByMs:)`).
        var deadlineAtMs: Int64
    }

    struct InFlight {
        var tx: GasTransaction
        var pushedAtHeight: Int64
        var replacements: Int
        /// Replaced `replacementsMax` times and still not landed: no more replacements, but it
        /// keeps its nonce and may land, so it is still watched; the batch's next attempt
        /// replaces it under that nonce (`Retry.supersedes`).
        var givenUp = false
    }

    /// One write to the database, in the order the manager decided it. Each can be written again
    /// after an answer was lost (a move only moves from its `from` statuses, a row is replaced
    /// whole, a settlement has its natural key).
    enum DatabaseWrite {
        case save(GasTransaction)
        /// `batchId` nil keeps each upload's. Only uploads still in batch `inBatch` move: written
        /// late (owed while the database failed), a move about this batch's message must not
        /// touch an upload another instance took over meanwhile and sent in a batch of its own
        /// (moved to failed, this instance would send it again while the other's message flies).
        case move([String], from: Set<UploadRecord.Status>, to: UploadRecord.Status, batchId: String?, reason: String?,
                  inBatch: String)
        /// Captures the hold of an upload that `messageCid`, landed, stored.
        case capture(uploadId: String, messageCid: String)
        /// Releases the hold of an upload that `inBatch`'s failure moved to `failed`; one no longer
        /// failed in that batch (taken over by another instance meanwhile) is that one's to settle.
        case release(uploadId: String, reason: String, inBatch: String)
        /// A claim (or the writes before a push) that failed, perhaps after it committed, and
        /// sent nothing: the upload, if found in `batchId`, batched or submitted, goes back to
        /// `back`. One upload each, so that a database failing often still gets through them.
        case unclaim(uploadId: String, batchId: String, back: UploadRecord.Status)
    }

    /// The writes before a push failed: nothing was sent. `push` closes the row itself and
    /// answers false: handing this error, with the row in it, back out of `push` (thrown typed,
    /// or returned as an optional) built, but crashed at run time (a call through a null pointer)
    /// under this Swift 6.3.1 debug build.
    struct RecordFailed: Error {
        var underlying: any Error
    }

    /// What `submit` did: sent the message (or met a chain failure, retried from there), found
    /// none of its uploads still to claim, or gave them back after the database failed.
    enum Submitted { case sent, nothingToSend, givenBack }

    struct Retry {
        var readyAtMs: Int64
        var uploadIds: [String]
        var attempt: Int
        var batchId: String
        /// The batch its uploads were failed in when it was made: `batchId`, or for a single split
        /// from a batch, that batch. Its claim takes only uploads failed in one of the two: one
        /// failed in another batch was taken over by a peer meanwhile, and is the peer's to retry.
        var failedIn: String
        /// The given-up message this attempt replaces under its nonce, rather than taking a new
        /// nonce (which could land as well and store the uploads twice).
        var supersedes: String?
        /// Set when nothing is to be sent: the uploads are out of attempts (or of messages), and
        /// when due they are refunded with this reason, unless `supersedes` lands first
        /// (`landingGraceMs`; `attempt` is then unused).
        var refund: String? = nil
    }

    public nonisolated let config: Config
    private let store: any CreditStore
    private let chain: any ChainClient
    private let clock: WallClock
    private let logger: Logger
    private var lastTakeoverMs: Int64 = 0
    /// `recover()` failed and has not succeeded since.
    private var recoveryOwed = false
    private var policy: BatchPolicy
    private var known: [String: Known] = [:]
    /// The base fee each upload given back (`giveBack`) was queued at (0 if no tick had set it
    /// yet), until it is picked up again, or found no longer queued (a peer claimed it).
    private var givenBackBaseFees: [String: Int128] = [:]
    /// Messages left to uploads that were sent before this process took them (a restart or a
    /// takeover queued them again, or took their message over): `sendsPerUploadMax` less the
    /// messages on record (`UploadRecord.attempts`), one less for each message sent since. One
    /// at 0 whose message fails is refunded, not sent again (`retryOrFallBack`), so restarts
    /// never give an upload more than `sendsPerUploadMax` messages in all. An upload not here
    /// was never sent before: the retry schedule alone stops it at that count.
    private var sendsLeft: [String: Int] = [:]
    /// Rows written before their message was sent, by row id, until the push returns.
    private var recorded: [String: GasTransaction] = [:]
    private var inflight: [String: InFlight] = [:]
    private var retries: [Retry] = []
    /// Writes the database has not taken yet, oldest first (see `DatabaseWrite`).
    private var owed: [DatabaseWrite] = []
    private var paying = false
    private var waitingToPay: [CheckedContinuation<Void, Never>] = []
    /// The last head a tick or call got from the chain, and when.
    private var lastHead: (head: ChainHead, atMs: Int64)?
    /// The last `decisionDelaysKept` ticks' delays from their start to their policy decision,
    /// oldest first.
    private var decisionDelays: [Int64] = []
    /// The heights whose base fees the policy has been given, by ticks and by the history at
    /// start, so that it learns each height's once and in order (`observe(head:)`).
    private var observedHeights: ClosedRange<Int64>?
    private var batchCounter = 0
    private var rng: SplitMix64

    public init(store: any CreditStore, chain: any ChainClient, clock: WallClock, config: Config = Config(), logger: Logger? = nil) {
        self.store = store
        self.chain = chain
        self.clock = clock
        self.config = config
        self.logger = logger ?? Logger(label: "credits.gas")
        var policyConfig = config.policy
        policyConfig.model?.gas = config.gas
        policy = BatchPolicy(config: policyConfig)
        rng = SplitMix64(seed: config.seed)
    }

    /// Base fees of the chain's recent past, oldest first, for the policy (see
    /// `BatchPolicy.remember(baseFees:)`).
    public func remember(baseFees: [Int128]) {
        policy.remember(baseFees: baseFees)
    }

    /// In the model mode, asks the chain for the base fees of its last
    /// `historyAtStartEpochs` heights and hands them to the policy, so that the model decides
    /// from its first tick rather than after a day of ticks. A chain that cannot tell, or a
    /// failure (logged), leaves the rules to decide until the policy has seen enough. Steps may
    /// run meanwhile: the base fees go before those the ticks brought.
    public func loadHistory() async {
        guard let epochs = config.policy.model?.historyAtStartEpochs, epochs > 0 else { return }
        do {
            let head = try await chain.head()
            let from = max(0, head.height - Int64(epochs) + 1)
            let fees = try await chain.baseFees(heights: from...head.height)
            // Steps may have run meanwhile: the policy has their heights already.
            let upTo = observedHeights.map { min(head.height, $0.lowerBound - 1) } ?? head.height
            var kept = Array(fees.prefix(Int(max(0, upTo - from + 1))))
            // The first tick came two or more heights after this head: the heights between too.
            if let first = observedHeights?.lowerBound, first > head.height + 1, kept.count == fees.count,
               let between = await baseFees(missed: (head.height + 1)...(first - 1)) {
                kept += between
            }
            policy.remember(baseFees: kept)
            if !kept.isEmpty { observedHeights = from...(observedHeights?.upperBound ?? upTo) }
            logger.notice("base-fee history loaded for the batch policy's model", metadata: ["epochs": "\(kept.count)"])
        } catch {
            logger.warning("base-fee history unavailable; the batch policy's rules decide until it has seen a day",
                           metadata: ["error": "\(DatabaseOutage.describe(error))"])
        }
    }

    /// The base fees the batch policy has learned, one per height (`BatchPolicy.baseFeesLearned`).
    public var policyBaseFees: [Int128] { policy.baseFeesLearned }

    /// Whether the batch policy's model mode has a model to decide with.
    public var isPolicyModelFitted: Bool { policy.isModelFitted }

    /// Uploads waiting for a batch, messages waiting for a receipt, batches waiting to retry.
    public var queueLength: Int { policy.queueLength }
    public var messagesInFlight: Int { inflight.count }
    /// Uploads this manager keeps anything about: waiting in its policy, in flight, to settle,
    /// or given back to the queue and to be picked up again.
    public var uploadsTracked: Int { Set(known.keys).union(givenBackBaseFees.keys).union(sendsLeft.keys).count }
    public var retriesWaiting: Int { retries.count }
    /// Calls waiting for another call's database writes to finish (`payOwed`).
    public var callsWaitingToWrite: Int { waitingToPay.count }

    /// At start: takes back what this instance's previous process left mid-flight, and what
    /// other instances left untouched for `takeoverAfterMs` (presumed gone); a live peer's
    /// uploads in flight are left to it. See `takeOver`.
    ///
    /// When it fails (the database), the manager sends nothing and tries it again at each step
    /// and `process-batch` until it succeeds: a new message sent before it would carry this
    /// instance's tag, and the takeover would take its uploads for the last process's.
    public func recover() async throws {
        do {
            try await takeOver(includingOwn: true)
            recoveryOwed = false
        } catch {
            recoveryOwed = true
            logger.error("taking back what the last process left failed; the worker sends nothing until it succeeds, tried again each tick",
                         metadata: ["error": "\(DatabaseOutage.describe(error))"])
            throw error
        }
    }

    /// Messages on record (from the last `givenUpWatchMs`, a week) whose uploads are all still in
    /// their batch and taken over (`ours`). Sending those uploads again as new messages would store
    /// them twice when the old ones land, as they usually do. So, with the uploads `submitted`: a
    /// pending message goes back in flight under its CID (waited for, replaced under its own nonce
    /// if stuck); a confirmed one (its process stopped between recording the receipt and capturing)
    /// has its uploads captured now. With the uploads `failed` and the message still pending, it
    /// had been given up: it is watched again and the batch's next attempt replaces it under its
    /// nonce. At start (`refundedToo`), a pending message whose uploads were all refunded (given
    /// up, then its batch refunded) is watched again too, so that if it lands after all its gas is
    /// on record (the holds stay released). Returns the upload ids.
    private func adoptMessages(_ ours: (UploadRecord) -> Bool, refundedToo: Bool) async throws -> Set<String> {
        var batchOf: [String: (batchId: String?, status: UploadRecord.Status, attempts: Int)] = [:]
        for status in [UploadRecord.Status.submitted, .failed] {
            for u in try await store.uploads(status: status, limit: 100_000) where ours(u) {
                batchOf[u.uploadId] = (u.batchId, status, u.attempts)
            }
        }
        guard !batchOf.isEmpty || refundedToo else { return [] }
        let since = clock.nowMs() - config.givenUpWatchMs
        var adopted: Set<String> = []
        for tx in try await store.gasTransactions(sinceMs: since, limit: 1_000_000) {
            guard inflight[tx.messageCid] == nil, !tx.uploadIds.isEmpty else { continue }
            if refundedToo, tx.status == .pending, try await allRefunded(tx, ours) {
                inflight[tx.messageCid] = InFlight(tx: tx, pushedAtHeight: -1, replacements: 0, givenUp: true)
                adopted.formUnion(tx.uploadIds)
                continue
            }
            guard tx.uploadIds.allSatisfy({ batchOf[$0]?.batchId == tx.batchId }) else { continue }
            let statuses = Set(tx.uploadIds.compactMap { batchOf[$0]?.status })
            let replacements = tx.id.range(of: "-r", options: .backwards).flatMap { Int(tx.id[$0.upperBound...]) } ?? 0
            // Its uploads keep the messages they have left: should this one fail, they are not
            // sent more often in all than `sendsPerUploadMax`.
            for id in tx.uploadIds { if let b = batchOf[id] { noteSendsLeft(id, sentBefore: b.attempts) } }
            switch (tx.status, statuses) {
            case (.confirmed, [.submitted]):
                await owe(tx.uploadIds.map { .capture(uploadId: $0, messageCid: tx.messageCid) })
            case (.pending, [.submitted]) where (try? await chain.knows(cid: tx.messageCid)) == false:
                // Recorded, but the process stopped before sending it: the chain never got it,
                // so the uploads go back to the queue (below) and the row is closed as unsent.
                let why = "never sent: the process stopped between recording and sending it"
                try await store.saveGasTransaction(closedUnsent(tx, why))
                continue
            case (.pending, [.submitted]):
                // Its age in epochs counts from the first head seen (pushedAtHeight < 0). When the
                // chain cannot tell whether it got the message, it is waited for as if it had.
                inflight[tx.messageCid] = InFlight(tx: tx, pushedAtHeight: -1, replacements: replacements)
            case (.pending, [.failed]):
                inflight[tx.messageCid] = InFlight(tx: tx, pushedAtHeight: -1, replacements: replacements, givenUp: true)
                await retryOrFallBack(tx.uploadIds, attempt: tx.attempt, batchId: tx.batchId,
                                      reason: "message \(tx.messageCid) never landed", supersedes: tx.messageCid)
            default:
                continue
            }
            adopted.formUnion(tx.uploadIds)
        }
        if !adopted.isEmpty {
            logger.notice("messages left in flight taken over", metadata: ["uploads": "\(adopted.count)"])
        }
        return adopted
    }

    /// Every upload of the message is refunded, still in its batch, and taken over. Looked up one
    /// by one: only pending messages ask, and they are few, while refunded uploads pile up.
    private func allRefunded(_ tx: GasTransaction, _ ours: (UploadRecord) -> Bool) async throws -> Bool {
        for id in tx.uploadIds {
            guard let u = try await store.upload(uploadId: id), u.status == .refunded, u.batchId == tx.batchId, ours(u) else {
                return false
            }
        }
        return true
    }

    /// Takes over uploads left mid-flight: its own previous process's (`includingOwn`, at start)
    /// and a vanished peer's. Their messages on record go back in flight or are settled
    /// (`adoptMessages`); the rest (claimed but never pushed, or failed and waiting to retry) are
    /// queued again.
    private func takeOver(includingOwn: Bool) async throws {
        let now = clock.nowMs()
        let tag = "_\(config.instanceTag)_"
        let takeoverAfterMs = config.takeoverAfterMs
        // What this manager already handles (a peer's message it took over keeps the peer's batch id).
        let handled = Set(inflight.values.flatMap(\.tx.uploadIds) + retries.flatMap(\.uploadIds))
        let own = { (u: UploadRecord) -> Bool in u.batchId.map { $0.contains(tag) } ?? true }
        let ours = { (u: UploadRecord) -> Bool in
            if handled.contains(u.uploadId) { return false }
            return own(u) ? includingOwn : now - u.updatedAtMs >= takeoverAfterMs
        }
        let adopted = try await adoptMessages(ours, refundedToo: includingOwn)
        for status in [UploadRecord.Status.batched, .submitted, .failed] {
            let stale = try await store.uploads(status: status, limit: 100_000).filter { !adopted.contains($0.uploadId) && ours($0) }
            guard !stale.isEmpty else { continue }
            // A peer's upload moves only if still untouched for `takeoverAfterMs` as the move
            // reads it: a peer that wrote about it after it was read here is alive, and may have
            // sent it again meanwhile.
            var moved = try await store.transitionUploads(stale.filter(own).map(\.uploadId), from: [status], to: .queued,
                                                          batchId: nil, reason: nil)
            moved += try await store.transitionUploads(stale.filter { !own($0) }.map(\.uploadId), from: [status], to: .queued,
                                                       batchId: nil, reason: nil, inBatch: nil, untouchedSinceMs: now - takeoverAfterMs)
            if !moved.isEmpty {
                logger.notice("uploads taken back into the queue", metadata: ["count": "\(moved.count)", "from": "\(status.rawValue)"])
            }
        }
    }

    /// Queues an upload: the ledger holds its estimate, then the policy batches it.
    public func queueUpload(_ request: UploadRequest, idempotencyKey: String? = nil) async throws -> OperationResult {
        let result = try await store.execute(.upload(request), idempotencyKey: idempotencyKey)
        if case .queued = result.outcome, !result.replayed, known[request.uploadId] == nil {
            enqueue(request.uploadId, userId: request.userId, priority: request.priority, atMs: clock.nowMs())
        }
        return result
    }

    /// One tick: pick up new uploads, let the policy decide, send, and read receipts.
    public func step() async {
        let now = clock.nowMs()
        let head: ChainHead
        do {
            head = try await headAskingAgainOnce(tickStartMs: now)
            lastHead = (head, now)
        } catch {
            // Its age in ticks, to the nearest: on a wall clock a tick wakes a little after its
            // time on the grid (`GasManagerService`), by more or less each time, so a head two
            // ticks old can be two ticks and some milliseconds.
            let tickMs = config.policy.tickMs
            guard let last = lastHead, (now - last.atMs + tickMs / 2) / tickMs <= config.headStandInTicks else {
                logger.warning("chain head unavailable; trying again next tick", metadata: ["error": "\(error)"])
                return
            }
            logger.warning("chain head unavailable; the last head seen stands in, so uploads at their deadline still go",
                           metadata: ["error": "\(error)", "height": "\(last.head.height)", "ageMs": "\(now - last.atMs)"])
            head = last.head
        }
        switch await mustWait() {
        case .owedWrites:
            logger.warning("database writes still failing; the worker sends nothing until they are written",
                           metadata: ["owed": "\(owed.count)"])
            Gauge(label: "credits_database_writes_owed").record(owed.count)
            return
        case .recovery: return  // `recover` logged why
        case nil: break
        }
        // Now and then, adopt what a vanished instance left behind.
        if now - lastTakeoverMs >= config.takeoverAfterMs / 4 {
            do {
                try await takeOver(includingOwn: false)
                lastTakeoverMs = now
            } catch {
                logger.warning("taking over a vanished instance's uploads failed; trying again next tick",
                               metadata: ["error": "\(DatabaseOutage.describe(error))"])
            }
        }
        await pickUpQueued()
        // Uploads queued since the last tick could have gone out at once in this tipset, at this
        // base fee: the reference for timing savings.
        for (id, k) in known where k.queuedBaseFee == 0 { known[id]?.queuedBaseFee = head.baseFee }
        let newHeight = await observe(head: head)
        // The policy decides at the time it decides, not at the tick's start: the head call and
        // the reads before it take time on a wall clock (a slow node's head call, seconds), and an
        // upload whose deadline passes before the next tick's decision must go now. Decided with
        // the tick's start, one due in the first seconds after the next tick began waited for
        // that tick, and so went after its deadline. The next decision may also come later in
        // its tick than this one (a slower head call): the policy is told a time later by as
        // much as the longest of the last ticks' delays exceeds this one's (at most a tick), so
        // that "due by the next tick" covers it. Under `simulate` the clock stands still within
        // a tick: every delay is 0, and so is this.
        let decideAtMs = clock.nowMs()
        let delay = decideAtMs - now
        let lateNextMs = min(config.policy.tickMs, max(0, (decisionDelays.max() ?? 0) - delay))
        decisionDelays.append(delay)
        decisionDelays.removeFirst(max(0, decisionDelays.count - max(0, config.decisionDelaysKept)))
        for batch in policy.tick(nowMs: decideAtMs + lateNextMs, baseFee: head.baseFee, newHeight: newHeight) {
            await submit(batch.uploadIds, attempt: 1, batchId: nextBatchId(), from: .queued, head: head)
        }
        // Retries due, in passes: a push in one that fails for uploads at their deadline has its
        // next attempt due at once (`retryOrFallBack(dueByMs:)`), and the next pass sends it. Due
        // is read from the clock at each pass, not at the tick's start: a failed call takes time
        // (on a wall clock, the next attempt is due after the tick began).
        for _ in 0..<max(1, config.retryPassesPerTick) {
            let passAtMs = clock.nowMs()
            let due = retries.filter { $0.readyAtMs <= passAtMs }
            guard !due.isEmpty else { break }
            retries.removeAll { $0.readyAtMs <= passAtMs }
            for retry in due {
                if let why = retry.refund {
                    await owe(retry.uploadIds.map { .release(uploadId: $0, reason: why, inBatch: retry.batchId) })
                    continue
                }
                await submit(retry.uploadIds, attempt: retry.attempt, batchId: retry.batchId, from: .failed, head: head,
                             failedIn: retry.failedIn, supersedes: retry.supersedes)
            }
        }
        await poll(head: head)
        Gauge(label: "credits_upload_queue_depth").record(policy.queueLength)
        Gauge(label: "credits_messages_in_flight").record(inflight.count)
        Gauge(label: "credits_batches_waiting_retry").record(retries.count)
        Gauge(label: "credits_database_writes_owed").record(owed.count)
    }

    /// The chain's head. A call that fails soon enough after the tick began
    /// (`headRetryWithinMs`) is made once more; if that fails too, its error is thrown.
    private func headAskingAgainOnce(tickStartMs: Int64) async throws -> ChainHead {
        do {
            return try await chain.head()
        } catch {
            guard clock.nowMs() - tickStartMs < config.headRetryWithinMs else { throw error }
            logger.warning("chain head call failed; asking again", metadata: ["error": "\(error)"])
            return try await chain.head()
        }
    }

    /// Whether `head` is a height the policy has not seen. Ticks keep the epoch's rate, but a block
    /// can come late within its epoch: then one tick sees the same head as the last, and the next
    /// one the head after the height it missed. The policy learns each height's base fee once
    /// (twice, its climb would end; a height missed, one step would look twice as steep): a head
    /// seen already is not taken again, and the base fees of up to `missedHeightsMax` heights a
    /// tick missed are asked for and go first. A null round (no tipset at a height) gives the
    /// tipset before it, as the history at start does.
    private func observe(head: ChainHead) async -> Bool {
        guard let seen = observedHeights else {
            observedHeights = head.height...head.height
            return true
        }
        guard head.height > seen.upperBound else { return false }
        if head.height - seen.upperBound > 1, let missed = await baseFees(missed: (seen.upperBound + 1)...(head.height - 1)) {
            policy.observe(missed: missed)
        }
        // The history at start may have come meanwhile, with heights before these.
        let now = observedHeights ?? seen
        observedHeights = now.lowerBound...max(head.height, now.upperBound)
        return true
    }

    /// The base fees of heights no tick brought (between two ticks, or between the history at
    /// start and the first tick), one per height; nil, logged, when there are more than
    /// `missedHeightsMax` of them or the chain does not give them all: they are left out of the
    /// policy's history.
    private func baseFees(missed heights: ClosedRange<Int64>) async -> [Int128]? {
        var error = "more than missedHeightsMax (\(config.missedHeightsMax))"
        if Int64(heights.count) <= config.missedHeightsMax {
            do {
                let fees = try await chain.baseFees(heights: heights)
                if fees.count == heights.count { return fees }
                error = "the chain gave \(fees.count) base fees"
            } catch let e {
                error = "\(e)"
            }
        }
        logger.warning("base fees of heights no tick brought unavailable; left out of the policy's history",
                       metadata: ["heights": "\(heights)", "error": "\(error)"])
        return nil
    }

    enum Wait { case owedWrites, recovery }

    /// Why nothing may be sent now, or nil: writes owed to the database come first (each is
    /// tried again here), then the takeover of what the last process left, if it is still owed.
    private func mustWait() async -> Wait? {
        guard await payOwed() else { return .owedWrites }
        if recoveryOwed, (try? await recover()) == nil { return .recovery }
        return nil
    }

    /// At shutdown: sends nothing new, but reads receipts of messages in flight so their uploads
    /// settle now rather than after the next start. Returns how many messages are still in flight
    /// and writes still owed.
    public func drainInFlight() async -> Int {
        guard await payOwed(), !inflight.isEmpty, let head = try? await chain.head() else { return inflight.count + owed.count }
        lastHead = (head, clock.nowMs())
        await poll(head: head)
        return inflight.count + owed.count
    }

    /// `POST /api/admin/process-batch`: with no batch id, sends everything queued now, whatever
    /// the policy says; with one, retries that batch now instead of after its backoff. Returns
    /// the batch ids sent; throws NOT_FOUND for a batch id that is not waiting, and UNAVAILABLE
    /// when the database fails a write (what was not sent stays queued, or waits to retry).
    public func processNow(batchId: String? = nil) async throws -> [String] {
        let head = try await chain.head()
        lastHead = (head, clock.nowMs())
        switch await mustWait() {
        case .owedWrites:
            throw CreditsError(.unavailable, "the database is failing writes; the worker sends again once they are written")
        case .recovery:
            throw CreditsError(.unavailable,
                               "the database failed while the worker took back what its last process left; it sends nothing until that is done")
        case nil: break
        }
        if let batchId {
            guard let index = retries.firstIndex(where: { $0.batchId == batchId && $0.refund == nil }) else {
                throw CreditsError(.notFound, "no batch '\(batchId)' is waiting to be sent")
            }
            let retry = retries.remove(at: index)
            switch await submit(retry.uploadIds, attempt: retry.attempt, batchId: retry.batchId, from: .failed, head: head,
                                failedIn: retry.failedIn, supersedes: retry.supersedes) {
            case .sent: return [batchId]
            case .nothingToSend: return []
            case .givenBack:
                throw CreditsError(.unavailable, "the database failed a write; batch '\(batchId)' waits for its next chance")
            }
        }
        await pickUpQueued()
        var sent: [String] = []
        var givenBack = 0
        for batch in policy.drain() {
            let id = nextBatchId()
            switch await submit(batch.uploadIds, attempt: 1, batchId: id, from: .queued, head: head) {
            case .sent: sent.append(id)
            case .nothingToSend: break
            case .givenBack: givenBack += batch.uploadIds.count
            }
        }
        if givenBack > 0 {
            let also = sent.isEmpty ? "" : " (sent: \(sent.joined(separator: ", ")))"
            throw CreditsError(.unavailable,
                               "the database failed a write; \(givenBack) uploads stay queued and go out once it answers\(also)")
        }
        return sent
    }

    public func getGasStats(days: Int) async throws -> GasStats {
        let since = clock.nowMs() - Int64(days) * 86_400_000
        return GasStats.compute(try await store.gasTransactions(sinceMs: since, limit: 1_000_000), usdPerFil: config.usdPerFil)
    }

    // MARK: - Steps

    /// Picks up the uploads queued in the database that this manager does not know yet (another
    /// instance's, or its own given back), and lets go of those waiting in its policy that are no
    /// longer queued: beside other instances, one of them claimed and sent them. Before
    /// 2026-12-03 such an upload stayed in the policy until its own attempt found it gone (up to
    /// its deadline, 4 hours for low priority), and the policy decided with uploads it would not
    /// get.
    private func pickUpQueued() async {
        // Only what was waiting before the read is let go: an upload queued meanwhile is not in it.
        let waitingBefore = policy.waitingUploadIds
        let givenBackBefore = Set(givenBackBaseFees.keys)
        let limit = config.policy.queueLengthMax
        guard let queued = try? await store.uploads(status: .queued, limit: limit) else { return }
        let sendsMax = config.retry.sendsPerUploadMax
        for u in queued where known[u.uploadId] == nil && u.attempts < sendsMax {
            enqueue(u.uploadId, userId: u.userId, priority: u.priority, atMs: u.createdAtMs)
            noteSendsLeft(u.uploadId, sentBefore: u.attempts)
        }
        await refundSentTooOften(queued.filter { known[$0.uploadId] == nil && $0.attempts >= sendsMax })
        // The whole queue was read (fewer than the limit), so an upload missing from it is not queued.
        if queued.count < limit {
            let queuedIds = Set(queued.map(\.uploadId))
            for id in policy.forget(waitingBefore.subtracting(queuedIds)) {
                known[id] = nil
                sendsLeft[id] = nil
            }
            // Given back, then claimed by a peer before this read (the writes owed by the give-back
            // were written before it): the peer settles them, so nothing here would let them go.
            for id in givenBackBefore.subtracting(queuedIds) where known[id] == nil {
                givenBackBaseFees[id] = nil
                sendsLeft[id] = nil
            }
        }
    }

    /// Notes how many messages an upload this process took has left, from the messages it was
    /// sent in before (`sendsLeft`).
    private func noteSendsLeft(_ uploadId: String, sentBefore sends: Int) {
        if sends > 0 { sendsLeft[uploadId] = max(0, config.retry.sendsPerUploadMax - sends) }
    }

    /// The failure reason of an upload refunded because it was sent `sendsPerUploadMax` times in
    /// all, with the last message's failure when there is one.
    private func sentTooOftenReason(lastFailure: String? = nil) -> String {
        let why = "failed after \(config.retry.sendsPerUploadMax) messages, counted across restarts and takeovers"
        return lastFailure.map { "\(why): \($0)" } ?? why
    }

    /// Uploads a restart or a takeover queued again after they were sent `sendsPerUploadMax`
    /// times: claimed from the queue into a batch of their own (one instance wins), then
    /// refunded like any upload whose last attempt failed. Left queued if the claim fails, for
    /// the next tick.
    private func refundSentTooOften(_ uploads: [UploadRecord]) async {
        guard !uploads.isEmpty else { return }
        let batchId = nextBatchId()
        let why = sentTooOftenReason()
        guard let claimed = try? await store.transitionUploads(uploads.map(\.uploadId), from: [.queued], to: .failed,
                                                               batchId: batchId, reason: why) else { return }
        if !claimed.isEmpty {
            logger.notice("uploads sent too often refunded", metadata: ["count": "\(claimed.count)", "batch": "\(batchId)"])
        }
        await owe(claimed.map { .release(uploadId: $0, reason: why, inBatch: batchId) })
    }

    private func enqueue(_ uploadId: String, userId: String, priority: UploadPriority, atMs: Int64) {
        guard policy.enqueue(uploadId: uploadId, priority: priority, queuedAtMs: atMs) else { return }
        // The fee of sending it at once is the next tipset's: set at the first tick from now.
        known[uploadId] = Known(userId: userId, queuedAtMs: atMs, queuedBaseFee: givenBackBaseFees.removeValue(forKey: uploadId) ?? 0,
                                deadlineAtMs: atMs + (policy.config.deadlineMs[priority] ?? 0))
    }

    /// Claims the uploads (new ones are `queued`, retried ones `failed`) and sends their message:
    /// a new one, or, for the next attempt of a batch whose message was given up (`supersedes`),
    /// a replacement of it under its nonce. While writes are owed, or when the claim or the
    /// writes before the push fail, nothing is sent: the uploads go back (`giveBack`). A retry's
    /// uploads are claimed only while failed in its batch or in `failedIn` (`Retry.failedIn`).
    @discardableResult
    private func submit(_ ids: [String], attempt: Int, batchId: String, from: UploadRecord.Status, head: ChainHead,
                        failedIn: String? = nil, supersedes: String? = nil) async -> Submitted {
        let retry = from == .failed
            ? Retry(readyAtMs: clock.nowMs(), uploadIds: ids, attempt: attempt, batchId: batchId, failedIn: failedIn ?? batchId,
                    supersedes: supersedes) : nil
        guard await payOwed() else {
            giveBack(ids, retry: retry)
            return .givenBack
        }
        // A claim that failed, perhaps after it committed, or failed writes before the push:
        // whatever was claimed is moved back (owed), and the uploads are given back.
        func unclaim(_ ids: [String]) async -> Submitted {
            await owe(ids.map { .unclaim(uploadId: $0, batchId: batchId, back: from) })
            giveBack(ids, retry: retry)
            return .givenBack
        }
        // The given-up message this attempt replaces under its nonce. Its uploads are claimed
        // straight into `submitted`, as a new message's are recorded before it is sent: a process
        // killed after the replacement went out, before it wrote about it, leaves them submitted
        // beside that message's row, so the next one waits for the message (whose nonce the
        // replacement took) instead of queuing them and sending them under a new nonce.
        let old = supersedes.flatMap { cid in inflight[cid].map { (cid: cid, entry: $0) } }
        let claimedAs: UploadRecord.Status = old == nil ? .batched : .submitted
        var claimed: [String]
        do {
            if let retry {
                // Failed in this batch (its last attempt, or a claim given back), or, the first
                // time, in the batch it was split from.
                claimed = try await store.transitionUploads(ids, from: [.failed], to: claimedAs, batchId: batchId, reason: nil,
                                                            inBatch: batchId)
                let rest = ids.filter { !claimed.contains($0) }
                if retry.failedIn != batchId, !rest.isEmpty {
                    let more = try await store.transitionUploads(rest, from: [.failed], to: claimedAs, batchId: batchId, reason: nil,
                                                                 inBatch: retry.failedIn)
                    claimed = ids.filter { claimed.contains($0) || more.contains($0) }
                }
            } else {
                claimed = try await store.transitionUploads(ids, from: [from], to: .batched, batchId: batchId, reason: nil)
            }
        } catch {
            logger.warning("claiming a batch failed; its uploads go back",
                           metadata: ["batch": "\(batchId)", "error": "\(DatabaseOutage.describe(error))"])
            return await unclaim(ids)
        }
        // An upload not claimed is not this manager's now: another instance claimed it first (or
        // it was settled). Forgotten, so that if a takeover queues it again it is picked up again
        // (known, it was skipped, and stayed queued with its hold until a restart), and so that
        // beside other instances the manager does not keep every upload it lost a claim for.
        for id in ids where !claimed.contains(id) {
            known[id] = nil
            sendsLeft[id] = nil
        }
        guard !claimed.isEmpty else { return .nothingToSend }
        guard await push(claimed, attempt: attempt, batchId: batchId, head: head, superseding: old) else {
            return await unclaim(claimed)
        }
        return .sent
    }

    /// Uploads that were not sent after all: queued ones are picked up again from the database
    /// (after any `unclaim` owed is written), keeping the base fee they were queued at; a retry
    /// waits for its next chance.
    private func giveBack(_ ids: [String], retry: Retry?) {
        if let retry {
            retries.append(retry)
        } else {
            for id in ids {
                givenBackBaseFees[id] = known.removeValue(forKey: id)?.queuedBaseFee ?? 0
            }
        }
    }

    /// Sends the message. False when the writes before a new message failed, and so nothing was
    /// sent (its row, which may have been written, is closed as unsent); every other failure is
    /// the chain's, retried or fallen back from here.
    private func push(_ ids: [String], attempt: Int, batchId: String, head: ChainHead,
                      superseding old: (cid: String, entry: InFlight)? = nil) async -> Bool {
        let premium = old.map { RetrySchedule.replacementPremium($0.entry.tx.premium) } ?? config.premium
        let gasLimit = config.gas.gasLimit(items: ids.count)
        let feeCap = MessageFee.defaultFeeCap(baseFee: head.baseFee, premium: premium)
        let message = ChainMessage(uploadIds: ids, gasLimit: gasLimit, feeCap: feeCap, premium: premium)
        let tx = pendingTransaction(ids, attempt: attempt, batchId: batchId, head: head, premium: premium, feeCap: feeCap)
        let cid: String
        do {
            if let old {
                cid = try await chain.replace(old.cid, with: message)
                inflight[old.cid] = nil
                var oldTx = old.entry.tx
                oldTx.status = .replaced
                oldTx.updatedAtMs = clock.nowMs()
                await owe([.save(oldTx)])
            } else {
                // Written down before it is sent: a process killed in between leaves the row, and
                // its successor waits for the message (or requeues the uploads if the chain never
                // got it), never sending the batch again under a new nonce.
                cid = try await chain.push(message, recordingFirst: { cid in try await self.record(tx, cid: cid) })
            }
        } catch let error as RecordFailed {
            logger.warning("recording a message before sending it failed; nothing was sent",
                           metadata: ["batch": "\(batchId)", "error": "\(DatabaseOutage.describe(error.underlying))"])
            if let row = recorded.removeValue(forKey: tx.id) {
                // Its row may have been written: closed, as never sent.
                await owe([.save(closedUnsent(row, "not sent: \(DatabaseOutage.describe(error.underlying))"))])
            }
            return false
        } catch let error as ChainError where error.pendingCid != nil {
            // The answer was lost after the message was sent: it may land, so it is in flight
            // (waited for, replaced under its nonce if stuck), never sent again as a new message.
            cid = error.pendingCid!
            logger.notice("push answer lost; waiting for the message", metadata: ["cid": "\(cid)", "error": "\(error)"])
        } catch {
            // Nothing new was sent; a given-up message is still watched and may still land. A
            // row recorded for the message that was not sent is closed.
            var writes: [DatabaseWrite] = []
            if let row = recorded.removeValue(forKey: tx.id) {
                writes.append(.save(closedUnsent(row, "push failed: \(error)")))
            }
            writes.append(.move(ids, from: [.batched, .submitted], to: .failed, batchId: nil, reason: "push failed: \(error)",
                                inBatch: batchId))
            await owe(writes)
            // A call that failed and may pass if asked again: its next attempt is due a tick
            // before the earliest deadline still ahead of its uploads, if the backoff would come
            // later, so that the tick before that deadline sends it (or at once, when the deadline
            // passes before the next tick). Until 2026-12-04 only the second case was covered: a
            // push that failed two ticks before a deadline waited out a backoff of 30 to 60 s and
            // went after it.
            let now = clock.nowMs()
            let deadline = ids.compactMap { known[$0]?.deadlineAtMs }.filter { $0 > now }.min()
            let dueBy = (error as? ChainError)?.retryable == true ? deadline.map { $0 - policy.config.tickMs } : nil
            await retryOrFallBack(ids, attempt: attempt, batchId: batchId, reason: "push failed: \(error)", supersedes: old?.cid,
                                  dueByMs: dueBy)
            return true
        }
        var sent = tx
        sent.messageCid = cid
        for id in ids { sendsLeft[id]? -= 1 }
        // Recorded before sending, unless it was a replacement (its uploads claimed as submitted)
        // or the chain could not name it first.
        if recorded.removeValue(forKey: tx.id)?.messageCid != cid {
            let move = DatabaseWrite.move(ids, from: [.batched], to: .submitted, batchId: batchId, reason: nil, inBatch: batchId)
            await owe(old == nil ? [move, .save(sent)] : [.save(sent)])
        }
        inflight[cid] = InFlight(tx: sent, pushedAtHeight: head.height, replacements: 0)
        return true
    }

    /// Before a new message is sent: its uploads are `submitted` and its row is pending under the
    /// CID. Throws `RecordFailed` (and so nothing is sent) when either cannot be written, or when
    /// an upload is no longer batched in this batch (claimed an hour or more ago and taken over by
    /// another instance meanwhile: sent here too, it would be stored twice); the row is kept in
    /// `recorded` first, so that it can be closed as unsent whatever was written.
    private func record(_ tx: GasTransaction, cid: String) async throws {
        var row = tx
        row.messageCid = cid
        recorded[tx.id] = row
        do {
            let moved = try await store.transitionUploads(tx.uploadIds, from: [.batched], to: .submitted, batchId: tx.batchId,
                                                          reason: nil, inBatch: tx.batchId)
            if moved.count != tx.uploadIds.count {
                throw NoLongerInBatch(uploadIds: Set(tx.uploadIds).subtracting(moved).sorted(), batchId: tx.batchId)
            }
            try await store.saveGasTransaction(row)
        } catch {
            throw RecordFailed(underlying: error)
        }
    }

    struct NoLongerInBatch: Error, CustomStringConvertible {
        var uploadIds: [String]
        var batchId: String
        var description: String { "uploads no longer batched in \(batchId) (taken over?): \(uploadIds.joined(separator: ", "))" }
    }

    /// The row of a message that was never sent, closed: no gas, and why.
    private func closedUnsent(_ row: GasTransaction, _ reason: String) -> GasTransaction {
        var unsent = row
        unsent.status = .unsent
        unsent.failureReason = LedgerOperation.fittedText(reason)
        unsent.updatedAtMs = clock.nowMs()
        return unsent
    }

    /// The row of a message about to be sent (its CID set when known), with what the same uploads
    /// would have cost as single messages and sent at once.
    private func pendingTransaction(_ ids: [String], attempt: Int, batchId: String, head: ChainHead,
                                    premium: Int128, feeCap: Int128) -> GasTransaction {
        let gasLimit = config.gas.gasLimit(items: ids.count)
        let now = clock.nowMs()
        let single = MessageFee.compute(
            baseFee: head.baseFee, feeCap: MessageFee.defaultFeeCap(baseFee: head.baseFee, premium: premium), premium: premium,
            gasLimit: config.gas.gasLimit(items: 1), gasUsed: config.gas.gasUsed(items: 1)).total
        // Sending at once: each upload's share of this message at the base fee when it was queued.
        var immediate: Int128 = 0
        for id in ids {
            let queuedFee = known[id].map { $0.queuedBaseFee > 0 ? $0.queuedBaseFee : head.baseFee } ?? head.baseFee
            immediate += MessageFee.compute(
                baseFee: queuedFee, feeCap: MessageFee.defaultFeeCap(baseFee: queuedFee, premium: premium), premium: premium,
                gasLimit: gasLimit, gasUsed: config.gas.gasUsed(items: ids.count)).total
        }
        immediate /= Int128(ids.count)
        return GasTransaction(
            id: "\(batchId)-a\(attempt)-r0", batchId: batchId, messageCid: "", uploadIds: ids, gasLimit: gasLimit,
            gasUsed: config.gas.gasUsed(items: ids.count), baseFee: head.baseFee, premium: premium, feeCap: feeCap, totalCost: 0,
            individualCost: single * Int128(ids.count), immediateCost: immediate, status: .pending, attempt: attempt,
            failureReason: nil, createdAtMs: now, updatedAtMs: now)
    }

    private func poll(head: ChainHead) async {
        for cid in inflight.keys.sorted() {
            guard var f = inflight[cid] else { continue }
            let receipt: ChainReceipt?
            do {
                receipt = try await chain.receipt(cid: cid)
            } catch {
                continue  // an RPC error: ask again next tick
            }
            guard let receipt else {
                if f.givenUp {
                    // Watched only: its batch's next attempt replaces it. With none to come (its
                    // batch was refunded, or its uploads were taken over), it is watched for
                    // `givenUpWatchMs`, as a restart would, and then let go: a week-old message
                    // that never landed is not waited for forever.
                    if clock.nowMs() - f.tx.createdAtMs >= config.givenUpWatchMs, !retries.contains(where: { $0.supersedes == cid }) {
                        inflight[cid] = nil
                        await chain.forget(cid: cid)
                        logger.notice("a given-up message no longer watched", metadata: ["cid": "\(cid)", "batch": "\(f.tx.batchId)"])
                    }
                    continue
                } else if f.pushedAtHeight < 0 {
                    inflight[cid]?.pushedAtHeight = head.height  // adopted at start: its wait starts now
                } else if head.height - f.pushedAtHeight >= config.stuckAfterEpochs {
                    await replace(cid, f, head: head)
                }
                continue
            }
            inflight[cid] = nil
            if f.givenUp {
                // It landed after all: its uploads settle on it, and their next attempt is off.
                retries.removeAll { $0.supersedes == cid }
                await owe([.move(f.tx.uploadIds, from: [.failed], to: .submitted, batchId: f.tx.batchId, reason: nil,
                                 inBatch: f.tx.batchId)])
                logger.notice("a given-up message landed", metadata: ["cid": "\(cid)", "landed": "\(receipt.messageCid)"])
            }
            f.tx.updatedAtMs = clock.nowMs()
            // The replaced message may be the one that landed: the receipt names it.
            f.tx.messageCid = receipt.messageCid
            f.tx.gasUsed = receipt.gasUsed
            f.tx.totalCost = receipt.cost.total
            // Gas in nanoFIL for metrics: attoFIL totals would pass Int64.
            Counter(label: "credits_gas_spent_nanofil_total").increment(by: Int64(receipt.cost.total / 1_000_000_000))
            if receipt.exitCode == 0 {
                f.tx.status = .confirmed
                await owe([.save(f.tx)] + f.tx.uploadIds.map { .capture(uploadId: $0, messageCid: f.tx.messageCid) })
                Recorder(label: "credits_batch_size", aggregate: true).record(f.tx.uploadIds.count)
                Counter(label: "credits_messages_total", dimensions: [("status", "confirmed")]).increment()
                let saved = f.tx.individualCost - GasStats.batchedAtSameFee(f.tx)
                if saved > 0 { Counter(label: "credits_gas_saved_by_batching_nanofil_total").increment(by: Int64(saved / 1_000_000_000)) }
            } else {
                let reason = "message \(cid) reverted with exit code \(receipt.exitCode)"
                f.tx.status = .failed
                f.tx.failureReason = reason
                Counter(label: "credits_messages_total", dimensions: [("status", "failed")]).increment()
                await owe([.save(f.tx), .move(f.tx.uploadIds, from: [.submitted], to: .failed, batchId: nil, reason: reason,
                                              inBatch: f.tx.batchId)])
                await retryOrFallBack(f.tx.uploadIds, attempt: f.tx.attempt, batchId: f.tx.batchId, reason: reason)
            }
        }
    }

    /// A message that has not landed: replaced, under the same nonce, by one with at least 1.25×
    /// the premium, so that at most one of the two lands.
    private func replace(_ cid: String, _ f: InFlight, head: ChainHead) async {
        guard await payOwed() else { return }  // sends nothing while writes are owed; tried next tick
        if f.replacements >= config.replacementsMax {
            // Given up, but it keeps its nonce and may still land: watched, and replaced under
            // that nonce by the batch's next attempt, never sent again under a new one.
            inflight[cid]?.givenUp = true
            let reason = "message \(cid) never landed"
            await owe([.move(f.tx.uploadIds, from: [.submitted], to: .failed, batchId: nil, reason: reason, inBatch: f.tx.batchId)])
            await retryOrFallBack(f.tx.uploadIds, attempt: f.tx.attempt, batchId: f.tx.batchId, reason: reason, supersedes: cid)
            return
        }
        let premium = RetrySchedule.replacementPremium(f.tx.premium)
        let message = ChainMessage(uploadIds: f.tx.uploadIds, gasLimit: f.tx.gasLimit,
                                   feeCap: MessageFee.defaultFeeCap(baseFee: head.baseFee, premium: premium), premium: premium)
        let newCid: String
        do {
            newCid = try await chain.replace(cid, with: message)
        } catch {
            // It landed meanwhile, or the node refused: wait another while for its receipt. A
            // refused replacement counts as one, so a message that neither lands nor can be
            // replaced is given up after `replacementsMax` tries (retried, then refunded).
            inflight[cid]?.pushedAtHeight = head.height
            inflight[cid]?.replacements += 1
            logger.notice("replacement refused; waiting for the message", metadata: ["cid": "\(cid)", "error": "\(error)"])
            return
        }
        inflight[cid] = nil
        var old = f.tx
        old.status = .replaced
        old.updatedAtMs = clock.nowMs()
        var tx = f.tx
        tx.id = "\(f.tx.batchId)-a\(f.tx.attempt)-r\(f.replacements + 1)"
        tx.messageCid = newCid
        tx.premium = premium
        tx.feeCap = message.feeCap
        tx.baseFee = head.baseFee
        // The single messages it is compared with are priced as this one is sent: at this base
        // fee and premium (a stuck single would have been replaced too). Until 2026-12-04 they
        // kept the first send's, and batching savings on replaced messages strayed from f(1 − 1/K).
        tx.individualCost = pendingTransaction(tx.uploadIds, attempt: tx.attempt, batchId: tx.batchId, head: head,
                                               premium: premium, feeCap: message.feeCap).individualCost
        // So is sending at once, the timing reference: at each upload's queued base fee, with
        // this premium (sent at once, it would have stuck and been replaced too), so that a
        // replacement's raised tip does not count against timing. Of that price only the tip
        // depends on the premium, and at the queued base fee it is premium × gas limit (the fee
        // cap leaves room for it), so the first send's reference moves by the raise alone; the
        // queued base fees themselves may be gone (a restart adopted this message).
        tx.immediateCost = f.tx.immediateCost + (premium - f.tx.premium) * Int128(f.tx.gasLimit)
        tx.createdAtMs = clock.nowMs()
        tx.updatedAtMs = tx.createdAtMs
        await owe([.save(old), .save(tx)])
        inflight[newCid] = InFlight(tx: tx, pushedAtHeight: head.height, replacements: f.replacements + 1)
    }

    /// Backoff and retry; after the last attempt a batch is split into single messages, and a
    /// single upload is refunded. A batch whose given-up message may still land (`supersedes`)
    /// is not split (its uploads would go out under other nonces): after the last attempt its
    /// uploads are refunded, `landingGraceMs` later while that message is still watched (it may
    /// have landed: if its receipt comes meanwhile, they are captured on it instead), and should
    /// it land after that, its gas is on record and the holds stay released.
    ///
    /// Uploads that have been sent `sendsPerUploadMax` times, counted across restarts and
    /// takeovers (`sendsLeft`), are refunded whatever the attempt, and the rest go on without them.
    ///
    /// `dueByMs` (a push that failed, for uploads with a deadline ahead): the next attempt is due
    /// then if the backoff would come later, and at once if that time has come; a retry due at
    /// once is sent by the step's next pass over the retries, in this tick while it has passes
    /// left (`retryPassesPerTick`), else in the next.
    private func retryOrFallBack(_ ids: [String], attempt: Int, batchId: String, reason: String, supersedes: String? = nil,
                                 dueByMs: Int64? = nil) async {
        let now = clock.nowMs()
        // Refunded now or, while the given-up message they were in is watched, after a grace.
        func refund(_ ids: [String], _ why: String) async {
            if let supersedes, inflight[supersedes] != nil {
                retries.append(Retry(readyAtMs: now + config.landingGraceMs, uploadIds: ids, attempt: attempt, batchId: batchId,
                                     failedIn: batchId, supersedes: supersedes, refund: why))
            } else {
                await owe(ids.map { .release(uploadId: $0, reason: why, inBatch: batchId) })
            }
        }
        let spent = ids.filter { (sendsLeft[$0] ?? 1) <= 0 }
        if !spent.isEmpty {
            await refund(spent, sentTooOftenReason(lastFailure: reason))
        }
        let ids = ids.filter { !spent.contains($0) }
        guard !ids.isEmpty else { return }
        let why = "failed after \(config.retry.attemptsMax) attempts: \(reason)"
        if attempt < config.retry.attemptsMax {
            let delay = config.retry.delayMs(beforeAttempt: attempt + 1, jitterPPM: nextJitter())
            let readyAtMs = min(now + delay, max(now, dueByMs ?? Int64.max))
            retries.append(Retry(readyAtMs: readyAtMs, uploadIds: ids, attempt: attempt + 1, batchId: batchId, failedIn: batchId,
                                 supersedes: supersedes))
        } else if supersedes != nil {
            await refund(ids, why)
        } else if ids.count > 1 {
            for id in ids {
                retries.append(Retry(readyAtMs: now, uploadIds: [id], attempt: 1, batchId: "\(batchId)-single-\(id)", failedIn: batchId))
            }
        } else if let id = ids.first {
            await owe([.release(uploadId: id, reason: why, inBatch: batchId)])
        }
    }

    /// Writes these after any already owed, and as many of them as the database takes now.
    private func owe(_ writes: [DatabaseWrite]) async {
        owed += writes
        await payOwed()
    }

    /// Writes what is owed, oldest first, until one fails (kept, with the rest, for the next
    /// try). True when nothing is owed. One call writes at a time: one that finds another
    /// writing (the actor is reentrant) waits for it, then writes what is left.
    @discardableResult
    private func payOwed() async -> Bool {
        while paying {
            await withCheckedContinuation { waitingToPay.append($0) }
        }
        paying = true
        defer {
            paying = false
            let waiting = waitingToPay
            waitingToPay = []
            for w in waiting { w.resume() }
        }
        while let next = owed.first {
            do {
                try await perform(next)
            } catch {
                logger.warning("database write failed; kept, and written before anything else",
                               metadata: ["owed": "\(owed.count)", "error": "\(DatabaseOutage.describe(error))"])
                return false
            }
            owed.removeFirst()
        }
        return true
    }

    /// The reasons of moves and releases quote the chain's errors (a node's text, of any length
    /// and bytes): they are fitted to the ledger's text rules here, where they are written
    /// (`LedgerOperation.fittedText`), not where they are built, so that a move or a release is
    /// never refused for its reason. (A message row's reason is fitted where the row is closed,
    /// `closedUnsent`.)
    private func perform(_ w: DatabaseWrite) async throws {
        switch w {
        case .save(let tx):
            try await store.saveGasTransaction(tx)
        case .move(let ids, let from, let to, let batchId, let reason, let inBatch):
            try await store.transitionUploads(ids, from: from, to: to, batchId: batchId, reason: reason.map(LedgerOperation.fittedText),
                                              inBatch: inBatch)
        case .capture(let id, let cid):
            try await settle(id, storedBy: cid) { .capture(SettleRequest(uploadId: id, userId: $0)) }
        case .release(let id, let reason, let batchId):
            // Written late, a release must not refund an upload a peer took over and sent meanwhile
            // (its message would land on a released hold: stored, never charged). The ledger
            // checks, in the release's own transaction, that it is still failed in this batch.
            // Its reason fitted (above), lest the release be refused and the hold stay.
            try await settle(id) {
                .release(SettleRequest(uploadId: id, userId: $0, reason: LedgerOperation.fittedText(reason), failedInBatch: batchId))
            }
        case .unclaim(let id, let batchId, let back):
            // Moves nothing when the upload is no longer batched or submitted in `batchId`.
            try await store.transitionUploads([id], from: [.batched, .submitted], to: back, batchId: nil, reason: nil, inBatch: batchId)
        }
    }

    /// Captures or releases an upload's hold. Throws only what may pass on a later try (the
    /// database failing); an upload already settled is done with, and so, logged as an error, is
    /// a settlement the ledger refuses for good.
    /// A capture refused because the upload was refunded means its message landed after the
    /// refund (a given-up message, past `landingGraceMs`): stored on chain, its gas paid by the
    /// platform, never charged. The user keeps the credits; that is logged as a warning and
    /// counted (`credits_uploads_stored_after_refund_total`), and noted on its row
    /// (`noteStoredAfterRefund`), not taken back. `storedBy`: the message a capture is for.
    private func settle(_ uploadId: String, storedBy messageCid: String? = nil,
                        _ operation: (_ userId: String) -> LedgerOperation) async throws {
        givenBackBaseFees[uploadId] = nil
        sendsLeft[uploadId] = nil
        let userId: String
        if let k = known[uploadId] {
            userId = k.userId
        } else if let u = try await store.upload(uploadId: uploadId) {
            userId = u.userId
        } else {
            logger.error("no upload to settle", metadata: ["upload": "\(uploadId)"])
            return
        }
        do {
            _ = try await store.execute(operation(userId), idempotencyKey: nil)
        } catch let error as CreditsError where error.code == .invalidState {
            // Already settled (by an earlier run), or a release of an upload no longer failed in
            // its batch (taken over by another instance, whose to settle it is): nothing to do.
            logger.notice("an upload's settlement skipped", metadata: ["upload": "\(uploadId)", "why": "\(error.message)"])
            if let messageCid, try await store.noteStoredAfterRefund(uploadId: uploadId, messageCid: messageCid) {
                logger.warning("an upload stored on chain after its refund: not charged, its gas paid by the platform",
                               metadata: ["upload": "\(uploadId)", "user": "\(userId)", "message": "\(messageCid)"])
                Counter(label: "credits_uploads_stored_after_refund_total").increment()
            }
        } catch let error as CreditsError where error.code != .unavailable && error.code != .internal {
            logger.error("the ledger refused a settlement", metadata: ["upload": "\(uploadId)", "error": "\(error)"])
        }
        known[uploadId] = nil
    }

    private func nextBatchId() -> String {
        batchCounter += 1
        return "batch_\(clock.nowMs())_\(config.instanceTag)_\(batchCounter)"
    }

    private func nextJitter() -> Int64 {
        Int64(rng.next() % 1_000_000)
    }
}
