import CreditsCore

/// An offline schedule for `credits simulate` that knows the whole base-fee trace: the yardstick
/// the online policy is measured against. Finding the true optimum (batches of at most
/// `batchMax`, each upload sent inside its window) is a hard combinatorial problem; this is a
/// good feasible schedule, so its cost is an upper bound on the optimum's.
///
/// 1. Greedy: the earliest deadline still unsent goes at the cheapest epoch of its window, with
///    every unsent upload whose window contains that epoch (at most a full batch).
/// 2. Local search, until nothing improves: each upload moves to the message in its window (or a
///    message of its own at its window's cheapest epoch) where it adds less than it costs where it
///    is; each message moves to the cheapest epoch all its uploads' windows share.
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
        for _ in 0..<passesMax {
            var changed = false
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
