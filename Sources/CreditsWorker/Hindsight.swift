import CreditsCore

/// An offline schedule for `credits simulate` that knows the whole base-fee trace: the yardstick
/// the online policy is measured against. Finding the true optimum (batches of at most
/// `batchMax`, each upload sent inside its window) is a hard combinatorial problem; this is a
/// good feasible schedule, so its cost is an upper bound on the optimum's.
///
/// 1. Greedy: the earliest deadline still unsent goes at the cheapest epoch of its window, with
///    every unsent upload whose window contains that epoch (at most a full batch).
/// 2. Local search, until nothing improves; each pass, in this order:
///    - open: a new message at a dip (a local low of the base fee, cheapest first) takes the
///      uploads whose windows contain it, when together they save more than it costs (one upload
///      alone never pays for a whole message, so the upload move cannot open it);
///    - upload: each upload moves to the message in its window (or a message of its own at its
///      window's cheapest epoch) where it adds less than it costs where it is;
///    - close: a message closes when its uploads fit in other messages for less than it costs;
///    - merge: two messages close in time become one;
///    - message: each message moves to the cheapest epoch all its uploads' windows share.
///    On seed 1 of each trace and rule this comes within 0.7% of the exact optimum
///    (`scripts/exact-optimum`, a mixed-integer program); with the upload and message moves only
///    it was up to 5.3% above it.
///
/// A message sent at epoch t (the head at height t) lands at t+1 and pays the base fee the head
/// showed at t, `fees[t]`, as the simulated chain charges (`SimulatedChain.baseFeeHistory`: index =
/// height).
public enum Hindsight {
    public struct Message: Sendable, Equatable {
        public var epoch: Int64
        public var items: [Int]
    }

    /// Passes of the local search at most (each pass is a full sweep of both moves).
    static let passesMax = 50

    public static func schedule(windows: [(Int64, Int64)], fees: [Int128], gas: BatchGasModel, premium: Int128,
                                batchMax: Int) -> [Message] {
        precondition(batchMax >= 1 && !fees.isEmpty)
        let pricing = Pricing(fees: fees, gas: gas, premium: premium)
        var messages = greedy(windows: windows, pricing: pricing, batchMax: batchMax)
        var at = [Int](repeating: 0, count: windows.count)
        for (m, message) in messages.enumerated() {
            for i in message.items { at[i] = m }
        }
        let dips = dips(pricing: pricing, count: fees.count)
        let covering = covering(windows: windows, dips: dips)
        for _ in 0..<passesMax {
            var changed = openMessages(at: dips, covering: covering, messages: &messages, placed: &at, pricing: pricing,
                                       batchMax: batchMax)
            // Messages by epoch, for the ones inside a window.
            let byEpoch = messages.indices.filter { !messages[$0].items.isEmpty }.sorted { messages[$0].epoch < messages[$1].epoch }
            let epochs = byEpoch.map { messages[$0].epoch }
            for i in windows.indices {
                let (from, to) = windows[i]
                let here = at[i]
                let k = messages[here].items.count
                let saved = pricing.cost(messages[here].epoch, k) - pricing.cost(messages[here].epoch, k - 1)
                var best: Int?
                var bestAdded = saved
                var index = lowerBound(epochs, from)
                while index < epochs.count, epochs[index] <= to {
                    let m = byEpoch[index]
                    index += 1
                    let n = messages[m].items.count
                    guard m != here, n > 0, n < batchMax else { continue }
                    let added = pricing.cost(messages[m].epoch, n + 1) - pricing.cost(messages[m].epoch, n)
                    if added < bestAdded { best = m; bestAdded = added }
                }
                let cheapest = pricing.cheapestEpoch(from, to)
                if k > 1, pricing.cost(cheapest, 1) < bestAdded {
                    messages.append(Message(epoch: cheapest, items: []))
                    best = messages.count - 1
                }
                guard let target = best else { continue }
                messages[here].items.removeAll { $0 == i }
                messages[target].items.append(i)
                at[i] = target
                changed = true
            }
            if closeMessages(windows: windows, messages: &messages, placed: &at, pricing: pricing, batchMax: batchMax) {
                changed = true
            }
            if mergeMessages(windows: windows, messages: &messages, placed: &at, pricing: pricing, batchMax: batchMax) {
                changed = true
            }
            for m in messages.indices where !messages[m].items.isEmpty {
                let from = messages[m].items.map { windows[$0].0 }.max()!
                let to = messages[m].items.map { windows[$0].1 }.min()!
                let cheapest = pricing.cheapestEpoch(from, to)
                if pricing.fee(cheapest) < pricing.fee(messages[m].epoch) {
                    messages[m].epoch = cheapest
                    changed = true
                }
            }
            if !changed { break }
        }
        return messages.filter { !$0.items.isEmpty }
    }

    /// Epochs whose base fee is at or below both neighbours', cheapest first (earliest on ties).
    static func dips(pricing: Pricing, count: Int) -> [Int64] {
        let epochs = (0..<Int64(count)).filter { t in
            (t == 0 || pricing.fee(t) <= pricing.fee(t - 1)) && (t == Int64(count) - 1 || pricing.fee(t) <= pricing.fee(t + 1))
        }
        return epochs.sorted { (pricing.fee($0), $0) < (pricing.fee($1), $1) }
    }

    /// For each dip, the uploads whose windows contain it.
    static func covering(windows: [(Int64, Int64)], dips: [Int64]) -> [Int64: [Int]] {
        let sorted = dips.sorted()
        var out: [Int64: [Int]] = [:]
        for (i, (from, to)) in windows.enumerated() {
            var index = lowerBound(sorted, from)
            while index < sorted.count, sorted[index] <= to {
                out[sorted[index], default: []].append(i)
                index += 1
            }
        }
        return out
    }

    /// The open move: at each dip, the uploads that save more by leaving their message than they
    /// add to a new one there (most first, a batch at most) go together, when the schedule's cost
    /// falls. Returns whether one opened.
    static func openMessages(at dips: [Int64], covering: [Int64: [Int]], messages: inout [Message], placed at: inout [Int],
                             pricing: Pricing, batchMax: Int) -> Bool {
        var changed = false
        for t in dips {
            let added = pricing.cost(t, 2) - pricing.cost(t, 1)
            var leaving: [(saved: Int128, item: Int)] = []
            for i in covering[t] ?? [] {
                let here = messages[at[i]]
                guard pricing.fee(here.epoch) > pricing.fee(t) else { continue }
                let saved = pricing.cost(here.epoch, here.items.count) - pricing.cost(here.epoch, here.items.count - 1)
                if saved > added { leaving.append((saved, i)) }
            }
            guard leaving.count >= 2 else { continue }
            leaving.sort { ($0.saved, $1.item) > ($1.saved, $0.item) }
            let items = leaving.prefix(batchMax).map(\.item)
            // The exact change: the messages they leave, and the new one.
            var left: [Int: Int] = [:]
            for i in items { left[at[i], default: 0] += 1 }
            var delta = pricing.cost(t, items.count)
            for (m, n) in left {
                let k = messages[m].items.count
                delta += pricing.cost(messages[m].epoch, k - n) - pricing.cost(messages[m].epoch, k)
            }
            guard delta < 0 else { continue }
            let moving = Set(items)
            for m in left.keys { messages[m].items.removeAll { moving.contains($0) } }
            messages.append(Message(epoch: t, items: items))
            for i in items { at[i] = messages.count - 1 }
            changed = true
        }
        return changed
    }

    /// The close move: a message closes when its uploads, each joining the other message in its
    /// window where it adds least (room permitting), cost less there than the message does. One
    /// upload at a time never finds this: the message's fixed gas is saved only when the last one
    /// leaves. Dearest messages first. Returns whether one closed.
    static func closeMessages(windows: [(Int64, Int64)], messages: inout [Message], placed at: inout [Int],
                              pricing: Pricing, batchMax: Int) -> Bool {
        let byEpoch = inTimeOrder(messages)
        let epochs = byEpoch.map { messages[$0].epoch }
        let dearest = byEpoch.map { ($0, pricing.cost(messages[$0].epoch, messages[$0].items.count)) }
            .sorted { ($0.1, $1.0) > ($1.1, $0.0) }
        var changed = false
        for (m, _) in dearest where !messages[m].items.isEmpty {
            var joining: [Int: Int] = [:]
            var moves: [(item: Int, to: Int)] = []
            var added: Int128 = 0
            for i in messages[m].items {
                var best: (to: Int, added: Int128)?
                var index = lowerBound(epochs, windows[i].0)
                while index < epochs.count, epochs[index] <= windows[i].1 {
                    let o = byEpoch[index]
                    index += 1
                    let n = messages[o].items.count + joining[o, default: 0]
                    guard o != m, !messages[o].items.isEmpty, n < batchMax else { continue }
                    let more = pricing.cost(messages[o].epoch, n + 1) - pricing.cost(messages[o].epoch, n)
                    if best == nil || more < best!.added { best = (o, more) }
                }
                guard let best else { break }
                joining[best.to, default: 0] += 1
                moves.append((i, best.to))
                added += best.added
            }
            guard moves.count == messages[m].items.count,
                  added < pricing.cost(messages[m].epoch, messages[m].items.count) else { continue }
            for (i, o) in moves {
                messages[o].items.append(i)
                at[i] = o
            }
            messages[m].items = []
            changed = true
        }
        return changed
    }

    /// The indices of the messages that carry uploads, by epoch (then index).
    static func inTimeOrder(_ messages: [Message]) -> [Int] {
        messages.indices.filter { !messages[$0].items.isEmpty }.sorted { (messages[$0].epoch, $0) < (messages[$1].epoch, $1) }
    }

    /// The merge move: two messages close in time become one, at the cheapest epoch all their
    /// uploads' windows share, when that costs less than both (room permitting). Returns whether
    /// two merged.
    static func mergeMessages(windows: [(Int64, Int64)], messages: inout [Message], placed at: inout [Int],
                              pricing: Pricing, batchMax: Int) -> Bool {
        let byEpoch = inTimeOrder(messages)
        var changed = false
        for (position, m) in byEpoch.enumerated() where !messages[m].items.isEmpty {
            for o in byEpoch[(position + 1)...].prefix(neighboursMax) where !messages[o].items.isEmpty {
                let items = messages[m].items + messages[o].items
                guard items.count <= batchMax else { continue }
                let from = items.map { windows[$0].0 }.max()!
                let to = items.map { windows[$0].1 }.min()!
                guard from <= to else { continue }
                let epoch = pricing.cheapestEpoch(from, to)
                let before = pricing.cost(messages[m].epoch, messages[m].items.count)
                    + pricing.cost(messages[o].epoch, messages[o].items.count)
                guard pricing.cost(epoch, items.count) < before else { continue }
                messages[m] = Message(epoch: epoch, items: items)
                messages[o].items = []
                for i in items { at[i] = m }
                changed = true
            }
        }
        return changed
    }

    /// Messages after one (in time) that the merge move tries to merge it with.
    static let neighboursMax = 4

    /// What a schedule's messages cost.
    public static func cost(_ messages: [Message], fees: [Int128], gas: BatchGasModel, premium: Int128) -> Int128 {
        let pricing = Pricing(fees: fees, gas: gas, premium: premium)
        return messages.reduce(Int128(0)) { $0 + pricing.cost($1.epoch, $1.items.count) }
    }

    static func greedy(windows: [(Int64, Int64)], pricing: Pricing, batchMax: Int) -> [Message] {
        var unsent = Set(windows.indices)
        let order = windows.indices.sorted { windows[$0].1 < windows[$1].1 }
        var messages: [Message] = []
        for i in order where unsent.contains(i) {
            let best = pricing.cheapestEpoch(windows[i].0, windows[i].1)
            var batch = [i]
            for j in order where j != i && unsent.contains(j) && batch.count < batchMax {
                if windows[j].0 <= best && best <= windows[j].1 { batch.append(j) }
            }
            for j in batch { unsent.remove(j) }
            messages.append(Message(epoch: best, items: batch))
        }
        return messages
    }

    /// The first index whose epoch is at or after `epoch`.
    static func lowerBound(_ epochs: [Int64], _ epoch: Int64) -> Int {
        var low = 0
        var high = epochs.count
        while low < high {
            let mid = (low + high) / 2
            if epochs[mid] < epoch { low = mid + 1 } else { high = mid }
        }
        return low
    }

    struct Pricing {
        let fees: [Int128]
        let caps: [Int128]
        let gas: BatchGasModel
        let premium: Int128

        init(fees: [Int128], gas: BatchGasModel, premium: Int128) {
            self.fees = fees
            caps = fees.map { MessageFee.defaultFeeCap(baseFee: $0, premium: premium) }
            self.gas = gas
            self.premium = premium
        }

        /// The index of the base fee a message sent at t pays.
        private func landing(_ t: Int64) -> Int { Int(min(max(0, t), Int64(fees.count - 1))) }

        /// The base fee a message sent at epoch t pays.
        func fee(_ t: Int64) -> Int128 { fees[landing(t)] }

        /// A message of k uploads sent at epoch t (0 for none).
        func cost(_ t: Int64, _ k: Int) -> Int128 {
            guard k > 0 else { return 0 }
            let limit = gas.gasLimit(items: k)
            return MessageFee.compute(baseFee: fees[landing(t)], feeCap: caps[landing(t)], premium: premium, gasLimit: limit,
                                      gasUsed: limit * 4 / 5).total
        }

        /// The earliest epoch of [from, to] whose base fee is lowest.
        func cheapestEpoch(_ from: Int64, _ to: Int64) -> Int64 {
            var best = from
            var t = from
            while t <= to {
                if fee(t) < fee(best) { best = t }
                t += 1
            }
            return best
        }
    }
}
