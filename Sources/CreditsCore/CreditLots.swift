/// Whether a lot's credits were paid for or given.
public enum LotCategory: String, Sendable, Codable, Equatable, CaseIterable {
    case paid
    case promotional
}

/// One grant of credits to a user (a purchase's base or bonus, a milestone, an operator's grant,
/// a restoration), and what is left of it. A user's lots with credits left add up to their
/// balance whenever it is not below zero.
public struct CreditLot: Sendable, Equatable {
    public var id: Int64
    public var userId: String
    public var category: LotCategory
    /// The reference of the operation that granted it (`purchase:stripe:pi_1`, `milestone:u:plays_1k`).
    public var source: String
    /// Credits ever put in (a release of a hold puts back what the hold took).
    public var granted: Int64
    public var remaining: Int64
    /// nil: never expires (paid credits).
    public var expiresAtMs: Int64?
    public var createdAtMs: Int64

    public init(id: Int64, userId: String, category: LotCategory, source: String, granted: Int64, remaining: Int64,
                expiresAtMs: Int64?, createdAtMs: Int64) {
        self.id = id
        self.userId = userId
        self.category = category
        self.source = source
        self.granted = granted
        self.remaining = remaining
        self.expiresAtMs = expiresAtMs
        self.createdAtMs = createdAtMs
    }

    /// Expired at `nowMs`: unspendable from that millisecond on.
    public func isExpired(at nowMs: Int64) -> Bool {
        expiresAtMs.map { $0 <= nowMs } ?? false
    }
}

/// How lots are made and spent. Pure.
public struct LotRules: Sendable, Equatable {
    /// How long promotional credits live; paid credits never expire.
    public var promotionalLifetimeMs: Int64
    /// "Expiring soon" in balances: expiring within this window.
    public var expiringSoonMs: Int64

    public static let dayMs: Int64 = 86_400_000

    public init(promotionalLifetimeDays: Int64 = 365, expiringSoonDays: Int64 = 30) {
        promotionalLifetimeMs = promotionalLifetimeDays * Self.dayMs
        expiringSoonMs = expiringSoonDays * Self.dayMs
    }

    /// The order lots are burnt in: promotional before paid, then the soonest expiry (never
    /// last), then the oldest, then the lowest id.
    public static func burnsBefore(_ a: CreditLot, _ b: CreditLot) -> Bool {
        if a.category != b.category { return a.category == .promotional }
        switch (a.expiresAtMs, b.expiresAtMs) {
        case (let x?, let y?) where x != y: return x < y
        case (.some, nil): return true
        case (nil, .some): return false
        default: break
        }
        if a.createdAtMs != b.createdAtMs { return a.createdAtMs < b.createdAtMs }
        return a.id < b.id
    }

    /// The category a grant's lot gets, and its expiry.
    public func expiry(_ category: LotCategory, nowMs: Int64) -> Int64? {
        category == .promotional ? nowMs + promotionalLifetimeMs : nil
    }
}

/// What a journal row took from or put into lots: `"<lot id>:<credits>"` pairs, comma-separated
/// (`credit_transactions.lots`, `file_uploads.lots`).
public struct LotUsage: Sendable, Equatable, Codable {
    public var parts: [(lotId: Int64, credits: Int64)]

    public init(_ parts: [(lotId: Int64, credits: Int64)] = []) {
        self.parts = parts
    }

    public var total: Int64 { parts.reduce(0) { $0 + $1.credits } }

    public var text: String { parts.map { "\($0.lotId):\($0.credits)" }.joined(separator: ",") }

    public init?(text: String) {
        if text.isEmpty {
            parts = []
            return
        }
        var out: [(Int64, Int64)] = []
        for pair in text.split(separator: ",") {
            let f = pair.split(separator: ":")
            guard f.count == 2, let id = Int64(f[0]), let n = Int64(f[1]), n > 0 else { return nil }
            out.append((id, n))
        }
        parts = out
    }

    public static func == (a: LotUsage, b: LotUsage) -> Bool { a.text == b.text }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let usage = LotUsage(text: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not lot usage"))
        }
        self = usage
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(text)
    }
}

/// The lots a batch touches, by user: burnt, refilled, created, expired.
public struct LotBook: Sendable {
    public private(set) var lots: [Int64: CreditLot] = [:]
    private var byUser: [String: [Int64]] = [:]
    public private(set) var changed: Set<Int64> = []
    /// Lots this batch made (the rest of `changed` existed before).
    public private(set) var created: Set<Int64> = []

    public init(_ lots: [CreditLot]) {
        for lot in lots where self.lots[lot.id] == nil {
            self.lots[lot.id] = lot
            byUser[lot.userId, default: []].append(lot.id)
        }
    }

    private func userLots(_ userId: String) -> [CreditLot] { (byUser[userId] ?? []).compactMap { lots[$0] } }

    /// Takes up to `credits` from the user's unexpired lots, `preferring` lots of one source
    /// first (a refund takes back its own purchase's lots), each group in burn order. Returns
    /// what it took, which is less than asked only when the lots run out.
    public mutating func take(_ credits: Int64, userId: String, nowMs: Int64, preferring source: String? = nil) -> LotUsage {
        let candidates = userLots(userId).filter { $0.remaining > 0 && !$0.isExpired(at: nowMs) }
            .sorted { a, b in
                if let source, (a.source == source) != (b.source == source) { return a.source == source }
                return LotRules.burnsBefore(a, b)
            }
        var left = credits
        var usage = LotUsage()
        for lot in candidates where left > 0 {
            let n = min(left, lot.remaining)
            lots[lot.id]!.remaining -= n
            changed.insert(lot.id)
            usage.parts.append((lot.id, n))
            left -= n
        }
        return usage
    }

    /// Every expired remainder of the user's lots, emptied.
    public mutating func expire(userId: String, nowMs: Int64) -> LotUsage {
        var usage = LotUsage()
        for lot in userLots(userId).sorted(by: { $0.id < $1.id }) where lot.remaining > 0 && lot.isExpired(at: nowMs) {
            usage.parts.append((lot.id, lot.remaining))
            lots[lot.id]!.remaining = 0
            changed.insert(lot.id)
        }
        return usage
    }

    /// Puts up to `limit` credits back into the lots a hold took them from (a released upload);
    /// lots the batch did not load are skipped (the caller makes a new lot for the rest).
    public mutating func refill(_ usage: LotUsage, upTo limit: Int64) -> LotUsage {
        var done = LotUsage()
        var left = limit
        for part in usage.parts where lots[part.lotId] != nil && left > 0 {
            let n = min(part.credits, left)
            lots[part.lotId]!.remaining += n
            changed.insert(part.lotId)
            done.parts.append((part.lotId, n))
            left -= n
        }
        return done
    }

    public mutating func add(_ lot: CreditLot) -> LotUsage {
        if lots[lot.id] == nil { byUser[lot.userId, default: []].append(lot.id) }
        created.insert(lot.id)
        lots[lot.id] = lot
        changed.insert(lot.id)
        return LotUsage([(lot.id, lot.remaining)])
    }

    public var changedLots: [CreditLot] { changed.sorted().compactMap { lots[$0] } }
}
