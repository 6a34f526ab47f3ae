import CreditsCore

public struct ChainHead: Sendable, Equatable {
    public var height: Int64
    /// The base fee the next tipset's messages pay, attoFIL per gas: on Lotus computed from the
    /// head's messages (the head's own `ParentBaseFee` is what they paid, an epoch behind).
    public var baseFee: Int128

    public init(height: Int64, baseFee: Int128) {
        self.height = height
        self.baseFee = baseFee
    }
}

/// A message carrying a batch of uploads (an addPieces call).
public struct ChainMessage: Sendable, Equatable {
    public var uploadIds: [String]
    public var gasLimit: Int64
    public var feeCap: Int128
    public var premium: Int128

    public init(uploadIds: [String], gasLimit: Int64, feeCap: Int128, premium: Int128) {
        self.uploadIds = uploadIds
        self.gasLimit = gasLimit
        self.feeCap = feeCap
        self.premium = premium
    }
}

public struct ChainReceipt: Sendable, Equatable {
    /// The message that landed: the one asked about, or the replacement that took its nonce.
    public var messageCid: String
    /// 0 = success; anything else reverted.
    public var exitCode: Int
    public var gasUsed: Int64
    public var height: Int64
    /// What the message cost, from the chain's own accounting (StateReplay's GasCost).
    public var cost: MessageFee

    public init(messageCid: String, exitCode: Int, gasUsed: Int64, height: Int64, cost: MessageFee) {
        self.messageCid = messageCid
        self.exitCode = exitCode
        self.gasUsed = gasUsed
        self.height = height
        self.cost = cost
    }
}

/// A chain failure: `retryable` ones (an RPC error, a timeout) are tried again; final ones fail
/// the attempt.
public struct ChainError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var retryable: Bool
    /// Set by `push` when the answer was lost after the message was signed and sent: the node may
    /// have taken it, under this CID. The caller must treat the message as in flight (wait for
    /// its receipt, replace it under its nonce if it never lands), never send the batch again
    /// as a new message, which could land as well and pay the gas twice.
    public var pendingCid: String?

    public init(_ message: String, retryable: Bool, pendingCid: String? = nil) {
        self.message = message
        self.retryable = retryable
        self.pendingCid = pendingCid
    }

    public var description: String { message }
}

/// What the gas manager needs from Filecoin. `SimulatedChain` implements it on virtual time;
/// `LotusChain` (CreditsLotus) over a Lotus node's JSON-RPC API.
public protocol ChainClient: Sendable {
    func head() async throws -> ChainHead
    /// Pushes a message and returns its CID, calling `record(cid)` once the CID is known and
    /// before the message is sent, so that the caller writes it down first: a process killed
    /// between the two leaves a record of every message it may have sent. When `record` throws,
    /// nothing is sent. A `ChainError` with a `pendingCid` means the message may have been sent:
    /// it is in flight under that CID.
    func push(_ message: ChainMessage, recordingFirst record: @Sendable (String) async throws -> Void) async throws -> String
    /// False only when the chain (or its node's message pool) certainly never got the message,
    /// so that it can never land; throws when that cannot be told. (The default says true.)
    func knows(cid: String) async throws -> Bool
    /// Replaces a pending message with `message` (a higher premium) under the same sender nonce,
    /// so that at most one of them lands; returns the new CID. Throws a final `ChainError` when
    /// the message already landed or this client does not know it.
    func replace(_ cid: String, with message: ChainMessage) async throws -> String
    /// The receipt of a landed message, or nil while it is pending. The receipt of a replaced
    /// message is its replacement's (`messageCid` names the one that landed).
    func receipt(cid: String) async throws -> ChainReceipt?
    /// The base fee a message sent at each height of `heights` paid, as `head` gave it there
    /// (oldest first; a null round repeats the height before it), for the batch policy's model
    /// at start and for heights a tick missed. Empty when this chain cannot tell (the default).
    func baseFees(heights: ClosedRange<Int64>) async throws -> [Int128]
    /// The caller no longer watches `cid` (a given-up message let go after a week): whatever is
    /// kept for it (a signed copy for replacement, a wait's answer) can go. (The default keeps
    /// nothing.)
    func forget(cid: String) async
}

extension ChainClient {
    /// `push` with nothing to record.
    public func push(_ message: ChainMessage) async throws -> String {
        try await push(message, recordingFirst: { _ in })
    }

    public func knows(cid: String) async throws -> Bool { true }

    public func baseFees(heights: ClosedRange<Int64>) async throws -> [Int128] { [] }

    public func forget(cid: String) async {}
}
