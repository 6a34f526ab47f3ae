import AsyncHTTPClient
import CreditsChain
import CreditsCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// The chain protocol over a Lotus node's JSON-RPC 2.0 API (`POST <url>/rpc/v1`,
/// `Authorization: Bearer <JWT>`), with the shapes of Lotus's api-methods-v1-stable: big numbers
/// as decimal strings of attoFIL, CIDs as `{"/": "bafy..."}`.
///
/// - `head`: `Filecoin.ChainHead`, and the base fee the next tipset's messages will pay, computed
///   from the head as Lotus's ComputeBaseFee does (`BaseFeeRule.next(parentBaseFee:blocks:)`):
///   `Filecoin.ChainGetBlockMessages [blockCid]` for each of its blocks, and
///   `Filecoin.StateNetworkVersion [tsk]` for the rule (28 on: FIP-0115). The head's own
///   `Blocks[0].ParentBaseFee` is what its messages paid, an epoch behind. Computed once a head;
///   when that fails, the ParentBaseFee stands in (logged) and the next call tries again.
/// - `baseFees(heights:)`: for each height below the head, `Filecoin.ChainGetTipSetAfterHeight
///   [height + 1, null]`'s `Blocks[0].ParentBaseFee` (what the first tipset after it paid), a
///   few at a time; for the head's height, `head`'s.
/// - `push`: `Filecoin.GasEstimateMessageGas [msg, {MaxFee}, null]` fills the gas limit (the
///   policy's fee cap and premium are kept, capped so that fee cap × gas limit ≤ MaxFee as Lotus's
///   CapGasFee does), `Filecoin.MpoolGetNonce [from]` gives the nonce,
///   `Filecoin.WalletSignMessage [from, msg]` signs it with the node's wallet (so its CID is
///   known, and recorded by the caller, before it is sent) and `Filecoin.MpoolPush [signed]`
///   sends it. Pushes take nonces one
///   at a time. When MpoolPush's answer is lost the message may be in the mpool: `push` throws
///   with `pendingCid` (the caller keeps it in flight and never sends the batch again as a new
///   message), and the next push first sends that same signed message again if its nonce is
///   still free, so no later message takes it.
/// - `replace`: the same message and nonce with the new premium and fee cap, signed with
///   `Filecoin.WalletSignMessage` and sent with `Filecoin.MpoolPush`, as `lotus mpool replace`
///   does; at most one of the two can land. A message an earlier process sent is read back with
///   `Filecoin.ChainGetMessage`.
/// - `knows`: `Filecoin.ChainGetMessage`; "block not found" means the node never got it.
/// - `receipt`: one `Filecoin.StateWaitMsg [cid, confidence, lookback, true]` per message, in a
///   task of its own (it blocks until the message lands), and `Filecoin.StateReplay [tsk, cid]`
///   for the exact cost. The lookup names the message that landed: a replacement is noticed and
///   its receipt used. `receipt` answers nil until the wait has finished.
///
/// The token is sent only in the Authorization header and never logged or put in an error.
public final class LotusChain: ChainClient, Sendable {
    public struct Config: Sendable {
        /// The node's API base (`http://127.0.0.1:1234`); `/rpc/v1` is appended.
        public var url: String
        public var token: String
        /// The sending wallet (held by the node) and the storage actor the batches call.
        public var from: String
        public var to: String
        /// The actor method a batch calls (a stand-in for the storage contract's addPieces).
        public var method: Int64 = 0
        /// The most one message may cost, in attoFIL (Lotus's MessageSendSpec.MaxFee).
        public var maxFee: Int128 = 1_000_000_000_000_000  // 0.001 FIL
        /// Epochs a receipt must be buried under before it counts.
        public var confidence: Int64 = 5
        /// How far back StateWaitMsg looks for a message that may already have landed.
        public var lookbackEpochs: Int64 = 2_880
        /// Timeout of one ordinary call, and of one StateWaitMsg (which blocks until a message lands).
        public var callTimeoutMs: Int64 = 30_000
        public var waitTimeoutMs: Int64 = 30 * 60_000
        /// Tries for each height's base fee in `baseFees` (a node that limits calls refuses some),
        /// the n-th try again after `historyRetryMs`·2^(n − 1).
        public var historyAttempts = 4
        public var historyRetryMs: Int64 = 500
        /// Heights asked at once in `baseFees` (a day is 2,880 calls: one at a time, a node 100 ms
        /// away would take about five minutes; four at a time, about 72 s). Half the HTTP
        /// client's 8 connections to a host: the rest serve the steps that run meanwhile.
        public var historyConcurrency = 4

        public init(url: String, token: String, from: String, to: String) {
            self.url = url
            self.token = token
            self.from = from
            self.to = to
        }
    }

    enum Wait {
        case waiting
        case landed(ChainReceipt)
    }

    struct State {
        /// Messages this process pushed, by CID, for replacement.
        var messages: [String: [String: Any]] = [:]
        var waits: [String: Wait] = [:]
        var nextId = 1
        /// Signed messages whose MpoolPush answer was lost, by nonce: sent again before their
        /// nonce is given to another message.
        var lost: [Int64: [String: Any]] = [:]
        /// The last head seen (its block CIDs) and the base fee computed from it.
        var head: (blocks: [String], head: ChainHead)?
    }

    public let config: Config
    private let client: HTTPClient
    private let waitClient: HTTPClient
    private let logger: Logger
    private let state = Mutex(UnsafeState())
    /// One push at a time: each reads the next nonce and takes it.
    private let pushGate = AsyncGate()

    /// Mutex needs Sendable contents; the JSON dictionaries are only touched under the lock.
    struct UnsafeState: @unchecked Sendable {
        var value = State()
    }

    /// StateWaitMsg blocks until its message lands, one call per message in flight. Those calls
    /// go through this client, whose pool is large and has no read timeout (the call's own
    /// timeout, `waitTimeoutMs`, bounds it), so that they never hold up the ordinary calls: an
    /// HTTP client opens 8 connections to a host at most (`HTTPClient.shared` too), and on it 8
    /// messages in flight would make every ChainHead and push wait for one of them to land. It
    /// lives as long as the process, as `HTTPClient.shared` does.
    public static let waitClient: HTTPClient = {
        var configuration = HTTPClient.Configuration.singletonConfiguration
        configuration.timeout = .init(connect: .seconds(30), read: nil)
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 4_096)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    public init(config: Config, client: HTTPClient = .shared, waitClient: HTTPClient = LotusChain.waitClient,
                logger: Logger = Logger(label: "credits.lotus")) {
        self.config = config
        self.client = client
        self.waitClient = waitClient
        self.logger = logger
    }

    // MARK: ChainClient

    public func head() async throws -> ChainHead {
        let tipset = try parseTipset(try await call("Filecoin.ChainHead", []), "Filecoin.ChainHead")
        if let known = state.withLock({ $0.value.head }), known.blocks == tipset.blocks {
            return known.head
        }
        let fee: Int128
        do {
            fee = try await nextBaseFee(tipset)
        } catch {
            // Deciding on a base fee an epoch old beats not deciding: a tick without a head sends
            // nothing, not even an upload at its deadline. Not kept: the next call tries again.
            logger.warning("the next base fee could not be computed from the head's messages; the head's ParentBaseFee stands in",
                           metadata: ["height": "\(tipset.height)", "error": "\(error)"])
            return ChainHead(height: tipset.height, baseFee: tipset.parentBaseFee)
        }
        let head = ChainHead(height: tipset.height, baseFee: fee)
        state.withLock { $0.value.head = (tipset.blocks, head) }
        return head
    }

    /// The base fee of the tipset after `tipset`: its blocks' messages (`ChainGetBlockMessages`)
    /// under the rule of its network version (`StateNetworkVersion`). At the upgrade to nv28
    /// itself the node still says 27 for the upgrade's tipset, whose successor FIP-0115 already
    /// prices: that one base fee comes out by the old rule.
    /// The calls go out together (a tipset has about five blocks), so a head costs one round trip
    /// after ChainHead, not six.
    private func nextBaseFee(_ tipset: Tipset) async throws -> Int128 {
        let key = tipset.blocks.map { ["/": $0] }
        async let version = Self.int(try await call("Filecoin.StateNetworkVersion", [key]))
        let blocks = try await withThrowingTaskGroup(of: (Int, [TipsetMessage]).self) { group in
            for (i, cid) in tipset.blocks.enumerated() {
                group.addTask {
                    (i, try Self.messages(try self.object(try await self.call("Filecoin.ChainGetBlockMessages", [["/": cid]]),
                                                          "ChainGetBlockMessages")))
                }
            }
            var blocks = [[TipsetMessage]](repeating: [], count: tipset.blocks.count)
            for try await (i, messages) in group { blocks[i] = messages }
            return blocks
        }
        guard let version = try await version else {
            throw ChainError("Filecoin.StateNetworkVersion returned no version", retryable: true)
        }
        let rule: BaseFeeRule = version >= 28 ? .fip0115 : .preNV28
        return rule.next(parentBaseFee: tipset.parentBaseFee, blocks: blocks)
    }

    /// A block's messages from `ChainGetBlockMessages`: `BlsMessages` (messages), then
    /// `SecpkMessages` (`{Message, Signature}`), named in that order by `Cids`.
    static func messages(_ answer: [String: Any]) throws -> [TipsetMessage] {
        func list(_ key: String) -> [Any]? { answer[key] is NSNull ? [] : answer[key] as? [Any] }
        guard let bls = list("BlsMessages"), let secp = list("SecpkMessages"), let cids = list("Cids"), cids.count == bls.count + secp.count
        else { throw ChainError("Filecoin.ChainGetBlockMessages: no BlsMessages, SecpkMessages and Cids that match", retryable: true) }
        let unsigned = bls + secp.map { ($0 as? [String: Any])?["Message"] as Any }
        return try zip(unsigned, cids).map { message, cid in
            guard let m = message as? [String: Any], let cid = Self.cid(cid), let from = m["From"] as? String,
                  let nonce = Self.int(m["Nonce"]), let gasLimit = Self.int(m["GasLimit"]),
                  let feeCap = Self.bigInt(m["GasFeeCap"]), let premium = Self.bigInt(m["GasPremium"])
            else { throw ChainError("Filecoin.ChainGetBlockMessages: a message without From, Nonce, GasLimit, GasFeeCap or GasPremium", retryable: true) }
            // A block holds no message above BlockGasLimit (Lotus refuses it): this also keeps
            // the sum of a tipset's gas limits far from Int64's end.
            guard (0...Filecoin.blockGasLimit).contains(gasLimit) else {
                throw ChainError("Filecoin.ChainGetBlockMessages: a message whose GasLimit \(gasLimit) is outside 0...BlockGasLimit", retryable: true)
            }
            return TipsetMessage(cid: cid, from: from, nonce: nonce, gasLimit: gasLimit, feeCap: feeCap, premium: premium)
        }
    }

    /// The base fee a message sent at each height pays, in height order: below the head, what
    /// the first tipset after the height paid (`Filecoin.ChainGetTipSetAfterHeight [height + 1,
    /// null]`; a null round repeats the height before it, as both wait for the same tipset),
    /// `historyConcurrency` calls at a time; at the head, `head`'s. A height that fails for good,
    /// or one past the head, fails the whole.
    public func baseFees(heights: ClosedRange<Int64>) async throws -> [Int128] {
        // Heights below the last head seen exist already; the head's own needs it fresh.
        let head: ChainHead
        if let seen = state.withLock({ $0.value.head?.head }), heights.upperBound < seen.height {
            head = seen
        } else {
            head = try await self.head()
        }
        guard heights.upperBound <= head.height else {
            throw ChainError("base fees asked up to height \(heights.upperBound), past the head", retryable: true)
        }
        let below = heights.lowerBound < head.height ? Array(heights.lowerBound...min(heights.upperBound, head.height - 1)) : []
        var fees = [Int128](repeating: 0, count: below.count)
        try await withThrowingTaskGroup(of: (Int, Int128).self) { group in
            var next = 0
            while next < below.count {
                if next >= max(1, config.historyConcurrency), let (i, fee) = try await group.next() {
                    fees[i] = fee
                }
                let i = next, height = below[i]
                group.addTask { (i, try await self.paid(after: height)) }
                next += 1
            }
            while let (i, fee) = try await group.next() { fees[i] = fee }
        }
        if heights.upperBound == head.height { fees.append(head.baseFee) }
        return fees
    }

    /// What the first tipset after `height` paid, asked again after a retryable error up to
    /// `historyAttempts` times.
    private func paid(after height: Int64) async throws -> Int128 {
        var attempt = 1
        while true {
            do {
                return try parseTipset(try await call("Filecoin.ChainGetTipSetAfterHeight", [height + 1, NSNull()]),
                                       "Filecoin.ChainGetTipSetAfterHeight").parentBaseFee
            } catch let error as ChainError where error.retryable && attempt < config.historyAttempts {
                try await Task.sleep(for: .milliseconds(RetrySchedule.doubledMs(config.historyRetryMs, times: attempt - 1, cappedAt: .max)))
                attempt += 1
            }
        }
    }

    /// A tipset as the node answers it: its height, its blocks' CIDs (`Cids`, its key) and what
    /// its messages paid (`Blocks[0].ParentBaseFee`).
    struct Tipset {
        var height: Int64
        var blocks: [String]
        var parentBaseFee: Int128
    }

    private func parseTipset(_ answer: Any, _ method: String) throws -> Tipset {
        let tipset = try object(answer, String(method.dropFirst("Filecoin.".count)))
        guard let headers = tipset["Blocks"] as? [Any], let first = headers.first as? [String: Any],
              let fee = Self.bigInt(first["ParentBaseFee"]), let height = Self.int(tipset["Height"]),
              let cids = tipset["Cids"] as? [Any], cids.count == headers.count
        else { throw ChainError("\(method): a tipset without Cids, Blocks[0].ParentBaseFee or Height", retryable: true) }
        let blocks = cids.compactMap { Self.cid($0) }
        guard blocks.count == cids.count else { throw ChainError("\(method): a tipset with a malformed CID", retryable: true) }
        return Tipset(height: height, blocks: blocks, parentBaseFee: fee)
    }

    /// The CID is the signed message's, known before MpoolPush: `record` runs between the two.
    public func push(_ message: ChainMessage, recordingFirst record: @Sendable (String) async throws -> Void) async throws -> String {
        try await pushGate.run { try await self.pushNext(message, record: record) }
    }

    /// `Filecoin.ChainGetMessage`: the node keeps every message it took in its blockstore, so
    /// "block not found" means it never got this one.
    public func knows(cid: String) async throws -> Bool {
        do {
            _ = try await call("Filecoin.ChainGetMessage", [["/": cid]])
            return true
        } catch let error as ChainError where Self.notFound(error.message) {
            return false
        }
    }

    static func notFound(_ message: String) -> Bool {
        let lower = message.lowercased()
        return lower.contains("block not found") || lower.contains("could not find")
    }

    /// Under the push gate: estimate, take the next nonce, sign, record, send.
    private func pushNext(_ message: ChainMessage, record: @Sendable (String) async throws -> Void) async throws -> String {
        let spec: [String: Any] = ["MaxFee": String(config.maxFee)]
        var msg = messageJSON(message)
        msg["GasLimit"] = 0  // the node estimates it
        let estimated = try object(try await call("Filecoin.GasEstimateMessageGas", [msg, spec, NSNull()]), "GasEstimateMessageGas")
        guard let gasLimit = Self.int(estimated["GasLimit"]), gasLimit > 0 else {
            throw ChainError("Filecoin.GasEstimateMessageGas returned no gas limit", retryable: true)
        }
        msg["GasLimit"] = gasLimit
        capFee(&msg)
        let nonce = try await resendLost()
        msg["Nonce"] = nonce
        let signed = try object(try await call("Filecoin.WalletSignMessage", [config.from, msg]), "WalletSignMessage")
        guard let cid = Self.cid(signed["CID"]) else {
            throw ChainError("Filecoin.WalletSignMessage returned no CID", retryable: true)
        }
        try await record(cid)  // nothing sent yet: a throw leaves the nonce free
        state.withLock { $0.value.messages[cid] = msg }
        do {
            let pushed = try await call("Filecoin.MpoolPush", [signed])
            if let answered = Self.cid(pushed), answered != cid {
                logger.warning("MpoolPush answered another CID than the signed message's", metadata: ["cid": "\(cid)", "answered": "\(answered)"])
            }
        } catch let error as ChainError where error.retryable {
            // The node may have taken it: it is in flight under `cid`, and sent again before its
            // nonce goes to another message.
            state.withLock { $0.value.lost[nonce] = signed }
            logger.notice("push answer lost; the message stays in flight", metadata: ["cid": "\(cid)", "nonce": "\(nonce)"])
            throw ChainError(error.message, retryable: true, pendingCid: cid)
        } catch {
            state.withLock { $0.value.messages[cid] = nil }
            throw error
        }
        logger.debug("pushed", metadata: ["cid": "\(cid)", "nonce": "\(nonce)", "uploads": "\(message.uploadIds.count)", "gasLimit": "\(gasLimit)"])
        return cid
    }

    /// The nonce for a new message, after sending again, byte for byte, each message whose push
    /// answer was lost and whose nonce is still free (the node never got it). A lost message
    /// whose nonce was taken (it arrived after all, or its replacement did) is forgotten.
    private func resendLost() async throws -> Int64 {
        var nonce = try await mpoolNonce()
        while let (lostNonce, signed) = state.withLock({ $0.value.lost.min { $0.key < $1.key } }), lostNonce <= nonce {
            if lostNonce == nonce {
                do {
                    _ = try await call("Filecoin.MpoolPush", [signed])
                    logger.notice("a message whose push answer was lost was sent again", metadata: ["nonce": "\(nonce)"])
                } catch let error as ChainError where !error.retryable {
                    logger.notice("a message whose push answer was lost was refused again", metadata: ["nonce": "\(nonce)", "error": "\(error)"])
                }
                nonce = try await mpoolNonce()
            }
            state.withLock { _ = $0.value.lost.removeValue(forKey: lostNonce) }
        }
        return nonce
    }

    /// `Filecoin.MpoolGetNonce`: the sender's next nonce, counting its messages in the mpool.
    private func mpoolNonce() async throws -> Int64 {
        guard let nonce = Self.int(try await call("Filecoin.MpoolGetNonce", [config.from])), nonce >= 0 else {
            throw ChainError("Filecoin.MpoolGetNonce returned no nonce", retryable: true)
        }
        return nonce
    }

    /// Lotus's CapGasFee: a message may cost at most MaxFee (fee cap × gas limit), and its premium
    /// is at most its fee cap.
    func capFee(_ msg: inout [String: Any]) {
        guard let gasLimit = Self.int(msg["GasLimit"]), gasLimit > 0,
              let feeCap = Self.bigInt(msg["GasFeeCap"]), let premium = Self.bigInt(msg["GasPremium"])
        else { return }
        let capped = feeCap * Int128(gasLimit) > config.maxFee ? config.maxFee / Int128(gasLimit) : feeCap
        msg["GasFeeCap"] = String(capped)
        msg["GasPremium"] = String(min(premium, capped))
    }

    public func replace(_ cid: String, with message: ChainMessage) async throws -> String {
        var msg: [String: Any]
        if let known = state.withLock({ $0.value.messages[cid] }) {
            msg = known
        } else {
            // Sent by an earlier process (the gas manager adopts its messages at a restart): the
            // node still has it.
            msg = try object(try await call("Filecoin.ChainGetMessage", [["/": cid]]), "ChainGetMessage")
            msg["CID"] = nil
            guard Self.int(msg["Nonce"]) != nil, msg["From"] as? String == config.from else {
                throw ChainError("message \(cid) is not from \(config.from): it cannot be replaced", retryable: false)
            }
        }
        msg["GasPremium"] = String(message.premium)
        msg["GasFeeCap"] = String(message.feeCap)
        capFee(&msg)
        let signed = try object(try await call("Filecoin.WalletSignMessage", [config.from, msg]), "WalletSignMessage")
        let pushed = try await call("Filecoin.MpoolPush", [signed])
        guard let newCid = Self.cid(pushed) else { throw ChainError("Filecoin.MpoolPush returned no CID", retryable: false) }
        state.withLock {
            $0.value.messages[newCid] = msg
            $0.value.messages[cid] = nil
            // The old CID's wait may still finish; nobody asks for it any more.
            $0.value.waits[cid] = nil
        }
        logger.info("replaced", metadata: ["cid": "\(cid)", "by": "\(newCid)", "premium": "\(message.premium)"])
        return newCid
    }

    public func receipt(cid: String) async throws -> ChainReceipt? {
        let (result, start) = state.withLock { s -> (ChainReceipt?, Bool) in
            switch s.value.waits[cid] {
            case .landed(let r):
                s.value.waits[cid] = nil
                s.value.messages[cid] = nil
                return (r, false)
            case .waiting:
                return (nil, false)
            case nil:
                s.value.waits[cid] = .waiting
                return (nil, true)
            }
        }
        if start {
            Task { await self.wait(for: cid) }
        }
        return result
    }

    /// Drops the signed copy kept for replacing `cid` and its wait's answer; a wait still
    /// running ends with its timeout, its answer unread.
    public func forget(cid: String) async {
        state.withLock {
            $0.value.messages[cid] = nil
            $0.value.waits[cid] = nil
        }
    }

    /// Messages kept for replacement, and waits started or answered: what `forget` lets go.
    var messagesKept: (messages: Int, waits: Int) {
        state.withLock { ($0.value.messages.count, $0.value.waits.count) }
    }

    /// One StateWaitMsg (blocking until the message, or a replacement of it, lands with
    /// `confidence`), then StateReplay for its cost. A failure or timeout ends the wait; the
    /// next `receipt` call starts another.
    private func wait(for cid: String) async {
        do {
            let lookup = try object(try await call(
                "Filecoin.StateWaitMsg", [["/": cid], config.confidence, config.lookbackEpochs, true],
                timeoutMs: config.waitTimeoutMs, through: waitClient), "StateWaitMsg")
            guard let landed = Self.cid(lookup["Message"]), let receipt = lookup["Receipt"] as? [String: Any],
                  let exitCode = Self.int(receipt["ExitCode"]), let gasUsed = Self.int(receipt["GasUsed"]),
                  let height = Self.int(lookup["Height"]), let tipset = lookup["TipSet"] as? [Any]
            else { throw ChainError("Filecoin.StateWaitMsg: a lookup without Message, Receipt, TipSet or Height", retryable: true) }
            if landed != cid {
                logger.info("replaced message landed", metadata: ["cid": "\(cid)", "landed": "\(landed)"])
            }
            let replay = try object(try await call("Filecoin.StateReplay", [tipset, ["/": landed]]), "StateReplay")
            let gas = replay["GasCost"] as? [String: Any] ?? [:]
            guard let burn = Self.bigInt(gas["BaseFeeBurn"]), let over = Self.bigInt(gas["OverEstimationBurn"]),
                  let tip = Self.bigInt(gas["MinerTip"]), let total = Self.bigInt(gas["TotalCost"])
            else { throw ChainError("Filecoin.StateReplay: no GasCost", retryable: true) }
            let cost = MessageFee(baseFeeBurn: burn, overEstimationBurn: over, minerTip: tip)
            if cost.total != total {
                logger.warning("StateReplay's TotalCost differs from its parts", metadata: ["cid": "\(landed)", "total": "\(total)"])
            }
            let r = ChainReceipt(messageCid: landed, exitCode: Int(exitCode), gasUsed: gasUsed, height: height, cost: cost)
            state.withLock { s in
                if case .waiting = s.value.waits[cid] { s.value.waits[cid] = .landed(r) }
            }
        } catch {
            logger.notice("waiting for a message failed; will wait again", metadata: ["cid": "\(cid)", "error": "\(error)"])
            state.withLock { _ = $0.value.waits.removeValue(forKey: cid) }
        }
    }

    // MARK: JSON-RPC

    /// One JSON-RPC call. HTTP and transport failures and timeouts are retryable; a refused
    /// token and JSON-RPC protocol errors are final; other node errors are judged by message.
    func call(_ method: String, _ params: [Any], timeoutMs: Int64? = nil, through other: HTTPClient? = nil) async throws -> Any {
        let id = state.withLock { s -> Int in
            defer { s.value.nextId += 1 }
            return s.value.nextId
        }
        let body = try JSONSerialization.data(withJSONObject: ["jsonrpc": "2.0", "method": method, "params": params, "id": id])
        var request = HTTPClientRequest(url: config.url + "/rpc/v1")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Authorization", value: "Bearer \(config.token)")
        request.body = .bytes(ByteBuffer(bytes: body))
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await (other ?? client).execute(request, timeout: .milliseconds(timeoutMs ?? config.callTimeoutMs))
            bytes = try await response.body.collect(upTo: 16 << 20)
        } catch {
            throw ChainError("\(method): the Lotus node did not answer (\(Self.describe(error)))", retryable: true)
        }
        switch response.status.code {
        case 200: break
        case 401, 403: throw ChainError("\(method): the Lotus node refused the API token (HTTP \(response.status.code))", retryable: false)
        default: throw ChainError("\(method): the Lotus node answered HTTP \(response.status.code)", retryable: true)
        }
        guard let reply = try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any] else {
            throw ChainError("\(method): the Lotus node's answer is not JSON-RPC", retryable: true)
        }
        if let error = reply["error"] as? [String: Any] {
            let code = Self.int(error["code"]) ?? 0
            let message = (error["message"] as? String ?? "").prefix(300)
            throw ChainError("\(method): JSON-RPC error \(code): \(message)", retryable: Self.retryable(code: code, message: String(message)))
        }
        guard let result = reply["result"] else { throw ChainError("\(method): no result", retryable: true) }
        return result
    }

    /// Protocol errors (a malformed request, an unknown method, bad params) and errors Lotus
    /// reports for a message that can never pass are final; the rest (internal errors,
    /// temporary node conditions) are retried.
    static func retryable(code: Int64, message: String) -> Bool {
        if [-32700, -32600, -32601, -32602].contains(code) { return false }
        let lower = message.lowercased()
        let final = ["insufficient funds", "not enough funds", "nonce too low", "already in mpool", "gas limit", "max fee",
                     "unknown actor", "key not found", "permission"]
        return !final.contains { lower.contains($0) }
    }

    /// A transport error's own text (connection refused, a timeout); it never holds the token,
    /// which travels only in a header.
    static func describe(_ error: any Error) -> String {
        String(String(describing: error).prefix(200))
    }

    private func object(_ value: Any, _ method: String) throws -> [String: Any] {
        guard let o = value as? [String: Any] else { throw ChainError("Filecoin.\(method): an unexpected result shape", retryable: true) }
        return o
    }

    /// A batch as a Lotus message. Params carry the upload ids (newline-separated), a stand-in
    /// for the storage contract's addPieces encoding.
    func messageJSON(_ m: ChainMessage) -> [String: Any] {
        [
            "Version": 0, "To": config.to, "From": config.from, "Nonce": 0, "Value": "0",
            "GasLimit": m.gasLimit, "GasFeeCap": String(m.feeCap), "GasPremium": String(m.premium),
            "Method": config.method, "Params": Data(m.uploadIds.joined(separator: "\n").utf8).base64EncodedString(),
        ]
    }

    static func cid(_ value: Any?) -> String? { (value as? [String: Any])?["/"] as? String }

    static func int(_ value: Any?) -> Int64? {
        // JSON numbers arrive as NSNumber; a JSON boolean is one too, of ObjC type "c"
        // (`is Bool` would also match the numbers 0 and 1).
        guard let n = value as? NSNumber, !(value is String), String(cString: n.objCType) != "c" else { return nil }
        return (value as? Int).map(Int64.init)
    }

    /// Lotus's big.Int: a decimal string (a JSON number is accepted too).
    static func bigInt(_ value: Any?) -> Int128? {
        if let s = value as? String { return Int128(s, radix: 10) }
        return int(value).map { Int128($0) }
    }
}

/// Lets one task at a time through, in the order they arrive.
actor AsyncGate {
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        if busy {
            await withCheckedContinuation { waiting.append($0) }
        } else {
            busy = true
        }
        defer {
            if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
        }
        return try await body()
    }
}
