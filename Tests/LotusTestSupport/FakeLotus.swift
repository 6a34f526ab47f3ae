import CreditsChain
import CreditsCore
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization

/// A Lotus JSON-RPC endpoint (`POST /rpc/v1`) for tests, on 127.0.0.1 and a free port, serving
/// the documented shapes (api-methods-v1-stable) from a `SimulatedChain`: ChainHead and
/// ChainGetTipSetAfterHeight (tipsets of five blocks whose ParentBaseFee is what their messages
/// paid: the simulated chain's base fee at the height before), ChainGetBlockMessages (stand-in
/// messages of others that carry the simulated demand, so that Lotus's ComputeBaseFee over them
/// gives the simulated chain's next base fee; one in two blocks), StateNetworkVersion (27 under
/// pre-nv28, 28 under FIP-0115), GasEstimateMessageGas, ChainGetMessage, MpoolGetNonce, WalletSignMessage (names the message: its CID),
/// MpoolPush (a new message at the next nonce, or a replacement under a pending one, as Lotus's
/// mpool: the same CID twice is refused, a landed nonce is too low, a gap is refused),
/// StateWaitMsg (blocks until the message or its replacement lands with the asked confidence),
/// StateReplay. It counts the calls it is answering at once, per method. Faults: JSON-RPC errors
/// and hangs (timeouts) on chosen methods, errors on chosen heights of ChainGetTipSetAfterHeight and
/// a delay on all of them, answers lost after the work is done, messages that never land (the
/// chain's stuck rate), replacement by someone else.
public final class FakeLotus: Sendable {
    public struct Faults: Sendable {
        /// Method → how many of its next calls answer a JSON-RPC error.
        public var failNext: [String: Int] = [:]
        /// Method → how many of its next calls hang (no answer for `hangMs`).
        public var hangNext: [String: Int] = [:]
        /// Method → how many of its next calls do their work, then hang: the answer is lost.
        public var hangAfterNext: [String: Int] = [:]
        /// Height → how many of ChainGetTipSetAfterHeight's next calls for it answer a JSON-RPC
        /// error (the adapter asks for height + 1 to learn a height's base fee).
        public var failHeights: [Int: Int] = [:]
        /// How long ChainGetTipSetAfterHeight takes to answer (to see calls overlap).
        public var tipsetDelayMs: Int64 = 0
        /// Method → its calls wait (for `hangMs` at most) until that many of them have been in
        /// flight at once: a client that sends them one after another meets the wait at each.
        public var gather: [String: Int] = [:]
        public var hangMs: Int64 = 3_000
        /// How long StateWaitMsg holds a request for a message that has not landed before it
        /// answers an error (Lotus would hold it longer; tests must shut down promptly).
        public var waitHoldMs: Int64 = 2_000
    }

    struct Book {
        var nonceOf: [String: Int64] = [:]
        var pendingByNonce: [Int64: String] = [:]
        var messages: [String: [String: Any]] = [:]
        var nextNonce: Int64 = 0
        var signatures = 0
        var calls: [String] = []
        var inFlight: [String: Int] = [:]
        var mostInFlight: [String: Int] = [:]
        var authorizations: Set<String> = []
    }

    struct Locked<T>: @unchecked Sendable { var value: T }

    public let chain: SimulatedChain
    public let token: String
    public let faults = Mutex(Faults())
    private let book = Mutex(Locked(value: Book()))

    public init(chain: SimulatedChain, token: String) {
        self.chain = chain
        self.token = token
    }

    public var calls: [String] { book.withLock { $0.value.calls } }
    /// The most calls of `method` the fake was answering at once, and how many it is answering now.
    public func mostInFlight(_ method: String) -> Int { book.withLock { $0.value.mostInFlight[method] ?? 0 } }
    public func inFlight(_ method: String) -> Int { book.withLock { $0.value.inFlight[method] ?? 0 } }
    /// True when every injected fault has been hit.
    public var faultsSpent: Bool {
        faults.withLock { f in
            [f.failNext, f.hangNext, f.hangAfterNext].allSatisfy { $0.values.allSatisfy { $0 == 0 } }
                && f.failHeights.values.allSatisfy { $0 == 0 }
        }
    }
    /// Every Authorization header the server received (to prove the token travels only there).
    public var authorizations: Set<String> { book.withLock { $0.value.authorizations } }
    public func nonce(of cid: String) -> Int64? { book.withLock { $0.value.nonceOf[cid] } }
    public func message(_ cid: String) -> [String: Any]? { book.withLock { $0.value.messages[cid] } }

    /// Runs `body` with the fake listening; `url` is its API base.
    public func serve(_ body: @Sendable (_ url: String) async throws -> Void) async throws {
        let router = Router(context: BasicRequestContext.self)
        router.post("rpc/v1") { request, _ in try await self.handle(request) }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        // The server's tasks (and the chain's) run on a queue of their own; the body runs on the
        // concurrency pool as usual. With two cores the pool has two threads, and other tests'
        // long synchronous stretches could hold both while a `credits serve` child waited on this
        // fake (its 5 s start-up probe timed out on a loaded CI run).
        try await withTaskExecutorPreference(QueueExecutor(label: "FakeLotus")) {
            try await app.test(.live) { client in
                try await withTaskExecutorPreference(globalConcurrentExecutor) {
                    try await body("http://127.0.0.1:\(client.port!)")
                }
            }
        }
    }

    /// Replaces a pending message the way an operator's `lotus mpool replace` would, behind the
    /// adapter's back. Returns the new CID.
    public func replaceElsewhere(_ cid: String) async throws -> String {
        guard var msg = message(cid), let nonce = nonce(of: cid) else { throw ChainError("unknown \(cid)", retryable: false) }
        let premium = (Int128(msg["GasPremium"] as? String ?? "0", radix: 10) ?? 0) * 2
        msg["GasPremium"] = String(premium)
        msg["GasFeeCap"] = String((Int128(msg["GasFeeCap"] as? String ?? "0", radix: 10) ?? 0) + premium)
        let new = try await chain.replace(cid, with: Self.chainMessage(msg))
        record(new, nonce: nonce, msg)
        return new
    }

    private func record(_ cid: String, nonce: Int64, _ msg: [String: Any]) {
        book.withLock {
            $0.value.nonceOf[cid] = nonce
            $0.value.pendingByNonce[nonce] = cid
            $0.value.messages[cid] = msg
        }
    }

    static func chainMessage(_ m: [String: Any]) -> ChainMessage {
        let params = Data(base64Encoded: m["Params"] as? String ?? "") ?? Data()
        let ids = String(decoding: params, as: UTF8.self).split(separator: "\n").map(String.init)
        return ChainMessage(
            uploadIds: ids, gasLimit: Int64(m["GasLimit"] as? Int ?? 0),
            feeCap: Int128(m["GasFeeCap"] as? String ?? "0", radix: 10) ?? 0,
            premium: Int128(m["GasPremium"] as? String ?? "0", radix: 10) ?? 0)
    }

    private func handle(_ request: Request) async throws -> Response {
        let auth = request.headers[.authorization] ?? ""
        _ = book.withLock { $0.value.authorizations.insert(auth) }
        guard auth == "Bearer \(token)" else { return Response(status: .unauthorized) }
        let bytes = try await request.body.collect(upTo: 1 << 20)
        guard let call = try JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any],
              let method = call["method"] as? String, let params = call["params"] as? [Any]
        else { return Self.reply(id: nil, error: (-32700, "parse error")) }
        let id = call["id"]
        book.withLock { b in
            b.value.calls.append(method)
            b.value.inFlight[method, default: 0] += 1
            b.value.mostInFlight[method] = max(b.value.mostInFlight[method] ?? 0, b.value.inFlight[method]!)
        }
        defer { book.withLock { $0.value.inFlight[method]! -= 1 } }
        let height = method == "Filecoin.ChainGetTipSetAfterHeight" ? params.first as? Int : nil
        let (fail, hang, hangAfter, hangMs) = faults.withLock { f -> (Bool, Bool, Bool, Int64) in
            var fail = (f.failNext[method] ?? 0) > 0
            if fail { f.failNext[method]! -= 1 }
            if !fail, let height, (f.failHeights[height] ?? 0) > 0 {
                f.failHeights[height]! -= 1
                fail = true
            }
            let hang = !fail && (f.hangNext[method] ?? 0) > 0
            if hang { f.hangNext[method]! -= 1 }
            let hangAfter = !fail && !hang && (f.hangAfterNext[method] ?? 0) > 0
            if hangAfter { f.hangAfterNext[method]! -= 1 }
            return (fail, hang, hangAfter, f.hangMs)
        }
        if fail { return Self.reply(id: id, error: (1, "injected failure")) }
        if hang {
            try await Task.sleep(for: .milliseconds(hangMs))
            return Self.reply(id: id, error: (1, "too late"))
        }
        if let together = faults.withLock({ $0.gather[method] }) {
            let until = ContinuousClock.now + .milliseconds(hangMs)
            while ContinuousClock.now < until, mostInFlight(method) < together { try await Task.sleep(for: .milliseconds(2)) }
        }
        let delay = height == nil ? 0 : faults.withLock { $0.tipsetDelayMs }
        if delay > 0 { try await Task.sleep(for: .milliseconds(delay)) }
        do {
            let result = try await dispatch(method, params)
            if hangAfter {
                try await Task.sleep(for: .milliseconds(hangMs))
                return Self.reply(id: id, error: (1, "too late"))
            }
            return Self.reply(id: id, result: result)
        } catch let e as ChainError {
            return Self.reply(id: id, error: (1, e.message))
        } catch {
            return Self.reply(id: id, error: (-32602, "invalid params: \(error)"))
        }
    }

    struct BadParams: Error {}

    /// A tipset as ChainHead and ChainGetTipSetAfterHeight answer it: five blocks, whose
    /// messages paid the simulated chain's base fee at the height before (height 0's, its own).
    public func tipset(height: Int64) -> [String: Any] {
        let paid = paid(height: height)
        return [
            "Cids": (0..<Filecoin.blocksPerTipset).map { ["/": "bafyblock\(height)x\($0)"] },
            "Blocks": (0..<Filecoin.blocksPerTipset).map { ["Miner": "f0100\($0)", "ParentBaseFee": String(paid), "Height": height] as [String: Any] },
            "Height": height,
        ]
    }

    /// What tipset `height`'s messages paid: the simulated base fee at the height before.
    func paid(height: Int64) -> Int128 {
        chain.baseFeeHistory()[Int(max(0, height - 1))]
    }

    /// Block `index` of tipset `height`: messages of others that carry the simulated chain's
    /// demand at that height: the first in blocks 0 and 1 (Lotus counts it once), the second
    /// signed (SecpkMessages). Before nv28 eight messages, whose gas limits add up to the
    /// demand's; under FIP-0115 four: the top 8·10⁹ gas by effective premium ends in one whose
    /// premium is the demand's P20, and the last bids far more but its fee cap is under the
    /// base fee (effectively −1): a client that ranked it by its bid would get another P20.
    func blockMessages(height: Int64, index: Int) throws -> [String: Any] {
        guard let demand = chain.demands(heights: height...height).first, index >= 0, index < Filecoin.blocksPerTipset else {
            throw ChainError("blockstore: block not found", retryable: false)
        }
        let paid = paid(height: height)
        var limits: [Int64], premiums: [Int128], caps: [Int128]
        switch chain.config.rule {
        case .preNV28:
            // Eight, so that none is above BlockGasLimit (up to 50·10⁹ of demand), as on Lotus.
            let q = demand.gasLimitSum / 8
            limits = Array(repeating: q, count: 7) + [demand.gasLimitSum - 7 * q]
            premiums = Array(repeating: 100_000, count: 8)
            caps = premiums.map { paid * 2 + $0 }
        case .fip0115:
            let p = demand.p20Premium
            limits = [3_000_000_000, 2_000_000_000, 4_000_000_000, 4_000_000_000]
            premiums = [3 * p + 3, 2 * p + 2, p, 1_000_000_000_000_000]
            caps = [paid + premiums[0] + 1, paid + premiums[1] + 1, paid + p + 1, paid - 1]
        }
        if demand.gasLimitSum == 0 && chain.config.rule == .preNV28 { limits = [] }
        let all = limits.indices.map { i -> [String: Any] in
            ["Version": 0, "To": "f099", "From": "f1others\(i)", "Nonce": Int(height), "Value": "0", "GasLimit": Int(limits[i]),
             "GasFeeCap": String(caps[i]), "GasPremium": String(premiums[i]), "Method": 0, "Params": NSNull()]
        }
        func cid(_ i: Int) -> [String: Any] { ["/": "bafy2bzothers\(height)x\(i)"] }
        let layout: [[Int]] = all.isEmpty ? [[], [], [], [], []]
            : all.count == 8 ? [[0, 1, 4], [0, 2, 5], [3, 6], [7], []] : [[0, 1], [0, 2], [3], [], []]
        let bls = layout[index].filter { $0 != 1 }, secp = layout[index].filter { $0 == 1 }
        return [
            "BlsMessages": bls.isEmpty ? NSNull() as Any : bls.map { all[$0] },
            "SecpkMessages": secp.map { ["Message": all[$0], "Signature": ["Type": 1, "Data": "c2ln"]] as [String: Any] },
            "Cids": (bls + secp).map(cid),
        ]
    }

    private func dispatch(_ method: String, _ params: [Any]) async throws -> Any {
        switch method {
        case "Filecoin.ChainHead":
            let head = try await chain.head()
            return tipset(height: head.height)
        case "Filecoin.ChainGetTipSetAfterHeight":
            // [height, null]: the tipset at that height of the heaviest chain (null rounds: none here).
            guard params.count == 2, let height = params[0] as? Int, params[1] is NSNull else { throw BadParams() }
            guard height >= 0, height < chain.baseFeeHistory().count else {
                throw ChainError("looking for tipset with height greater than start point", retryable: false)
            }
            return tipset(height: Int64(height))
        case "Filecoin.ChainGetBlockMessages":
            guard params.count == 1, let cid = (params[0] as? [String: Any])?["/"] as? String, cid.hasPrefix("bafyblock") else {
                throw BadParams()
            }
            let parts = cid.dropFirst("bafyblock".count).split(separator: "x")
            guard parts.count == 2, let height = Int64(parts[0]), let index = Int(parts[1]) else { throw BadParams() }
            return try blockMessages(height: height, index: index)
        case "Filecoin.StateNetworkVersion":
            guard params.count == 1, params[0] is [Any] else { throw BadParams() }
            return chain.config.rule == .fip0115 ? 28 : 27
        case "Filecoin.GasEstimateMessageGas":
            guard var msg = params.first as? [String: Any], params.count == 3, let spec = params[1] as? [String: Any],
                  spec["MaxFee"] is String
            else { throw BadParams() }
            let items = Self.chainMessage(msg).uploadIds.count
            if (msg["GasLimit"] as? Int ?? 0) == 0 { msg["GasLimit"] = Int(BatchGasModel.addPieces.gasLimit(items: items)) }
            return msg
        case "Filecoin.ChainGetMessage":
            guard params.count == 1, let cid = (params[0] as? [String: Any])?["/"] as? String else { throw BadParams() }
            guard var msg = message(cid) else { throw ChainError("blockstore: block not found", retryable: false) }
            msg["CID"] = ["/": cid]
            return msg
        case "Filecoin.MpoolGetNonce":
            guard params.count == 1, params[0] is String else { throw BadParams() }
            return Int(book.withLock { $0.value.nextNonce })
        case "Filecoin.WalletSignMessage":
            guard params.count == 2, params[0] is String, let msg = params[1] as? [String: Any], msg["Nonce"] is Int else {
                throw BadParams()
            }
            let n = book.withLock { b -> Int in
                b.value.signatures += 1
                return b.value.signatures
            }
            return ["Message": msg, "Signature": ["Type": 1, "Data": "c2lnbmF0dXJl"], "CID": ["/": "bafy2bzsigned\(n)"]] as [String: Any]
        case "Filecoin.MpoolPush":
            guard let signed = params.first as? [String: Any], let msg = signed["Message"] as? [String: Any],
                  let nonce = (msg["Nonce"] as? Int).map(Int64.init), let cid = (signed["CID"] as? [String: Any])?["/"] as? String
            else { throw BadParams() }
            let (next, pending) = book.withLock { ($0.value.nextNonce, $0.value.pendingByNonce[nonce]) }
            if nonce == next {
                _ = try await chain.push(Self.chainMessage(msg), cid: cid)
                book.withLock { $0.value.nextNonce += 1 }
            } else if nonce > next {
                throw ChainError("message nonce has too big a gap from expected nonce", retryable: false)
            } else if pending == cid {
                throw ChainError("message with nonce \(nonce) already in mpool", retryable: false)
            } else if let pending {
                do {
                    _ = try await chain.replace(pending, with: Self.chainMessage(msg), newCid: cid)
                } catch let e as ChainError where e.message.contains("not pending") {
                    throw ChainError("message nonce too low", retryable: false)
                }
            } else {
                throw ChainError("message nonce too low", retryable: false)
            }
            record(cid, nonce: nonce, msg)
            return ["/": cid]
        case "Filecoin.StateWaitMsg":
            guard params.count == 4, let cid = (params[0] as? [String: Any])?["/"] as? String,
                  let confidence = params[1] as? Int, params[3] as? Bool == true
            else { throw BadParams() }
            // Blocks, as Lotus does, until the message (or its replacement) is buried under
            // `confidence` tipsets; a client that gives up first sees a timeout.
            let deadline = ContinuousClock.now + .milliseconds(faults.withLock { $0.waitHoldMs })
            while ContinuousClock.now < deadline {
                if let r = try? await chain.receipt(cid: cid), let head = try? await chain.head(), head.height - r.height >= confidence {
                    return [
                        "Message": ["/": r.messageCid],
                        "Receipt": ["ExitCode": r.exitCode, "Return": NSNull(), "GasUsed": Int(r.gasUsed), "EventsRoot": NSNull()],
                        "ReturnDec": NSNull(),
                        "TipSet": [["/": "bafyts\(r.height)"]],
                        "Height": Int(r.height),
                    ] as [String: Any]
                }
                try await Task.sleep(for: .milliseconds(5))
            }
            throw ChainError("context deadline exceeded", retryable: true)
        case "Filecoin.StateReplay":
            guard params.count == 2, params[0] is [Any], let cid = (params[1] as? [String: Any])?["/"] as? String,
                  let r = try await chain.receipt(cid: cid)
            else { throw BadParams() }
            let refund = Int128(0)
            return [
                "MsgCid": ["/": cid],
                "MsgRct": ["ExitCode": r.exitCode, "Return": NSNull(), "GasUsed": Int(r.gasUsed), "EventsRoot": NSNull()],
                "GasCost": [
                    "Message": ["/": cid], "GasUsed": String(r.gasUsed), "BaseFeeBurn": String(r.cost.baseFeeBurn),
                    "OverEstimationBurn": String(r.cost.overEstimationBurn), "MinerPenalty": "0",
                    "MinerTip": String(r.cost.minerTip), "Refund": String(refund), "TotalCost": String(r.cost.total),
                ],
                "ExecutionTrace": [:] as [String: Any], "Error": "", "Duration": 1000,
            ] as [String: Any]
        default:
            throw ChainError("method not found: \(method)", retryable: false)
        }
    }

    private static func reply(id: Any?, result: Any? = nil, error: (Int, String)? = nil) -> Response {
        var body: [String: Any] = ["jsonrpc": "2.0", "id": id ?? NSNull()]
        if let error { body["error"] = ["code": error.0, "message": error.1] } else { body["result"] = result ?? NSNull() }
        let data = (try? JSONSerialization.data(withJSONObject: body)) ?? Data()
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Runs the jobs of the tasks that prefer it on a serial dispatch queue (which always gets a
/// thread), never on the concurrency pool.
final class QueueExecutor: TaskExecutor {
    let queue: DispatchQueue

    init(label: String) { queue = DispatchQueue(label: label) }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
