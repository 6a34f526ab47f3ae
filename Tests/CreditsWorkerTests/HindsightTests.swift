import CreditsChain
import CreditsCore
@testable import CreditsWorker
import Testing

/// The offline yardstick of `credits simulate`: feasible, never worse than its greedy start.
@Suite struct HindsightTests {
    let gas = BatchGasModel.addPieces
    let premium = Filecoin.premiumFloor

    /// Upload A may go at epoch 0 or 1, upload B at any epoch up to 5; the base fee falls from
    /// 10 to 6 (×10⁸) and then to 1. Greedy sends both with A at its cheapest epoch (1, fee 9);
    /// B alone at epoch 5 (fee 1) costs less than what it adds to A's message at fee 9.
    @Test func anUploadLeavesABatchForACheaperEpochOfItsOwn() {
        let fees: [Int128] = [10, 9, 8, 7, 6, 1, 1].map { $0 * 100_000_000 }
        let windows: [(Int64, Int64)] = [(0, 1), (0, 5)]
        let greedy = Hindsight.greedy(windows: windows, pricing: .init(fees: fees, gas: gas, premium: premium), batchMax: 20)
        #expect(greedy == [Hindsight.Message(epoch: 1, items: [0, 1])])
        let schedule = Hindsight.schedule(windows: windows, fees: fees, gas: gas, premium: premium, batchMax: 20)
        #expect(schedule == [Hindsight.Message(epoch: 1, items: [0]), Hindsight.Message(epoch: 5, items: [1])])
        // What it saves, from the fee formula: B's share of gas at fee 9 against a message of one at fee 1.
        let one = MessageFee.compute(baseFee: 100_000_000, feeCap: MessageFee.defaultFeeCap(baseFee: 100_000_000, premium: premium),
                                     premium: premium, gasLimit: gas.gasLimit(items: 1), gasUsed: gas.gasLimit(items: 1) * 4 / 5).total
        #expect(Hindsight.cost(schedule, fees: fees, gas: gas, premium: premium) < Hindsight.cost(greedy, fees: fees, gas: gas, premium: premium))
        #expect(Hindsight.cost([schedule[1]], fees: fees, gas: gas, premium: premium) == one)
    }

    /// Uploads that can wait leave an early message for a cheaper epoch, and join each other there.
    @Test func uploadsThatCanWaitGatherAtACheaperEpoch() {
        // A message sent at t pays fees[t]: 9 at epochs 0 and 1, 5 at 2, 1 at 3, 5 at 4.
        let fees: [Int128] = [9, 9, 5, 1, 5, 9, 9, 9].map { $0 * 100_000_000 }
        // The first upload's cheapest epoch is 3, which the others' windows contain: one message.
        let shared: [(Int64, Int64)] = [(0, 3), (2, 6), (1, 7)]
        #expect(Hindsight.schedule(windows: shared, fees: fees, gas: gas, premium: premium, batchMax: 20)
            == [Hindsight.Message(epoch: 3, items: [0, 1, 2])])
        // The first upload must go by epoch 1: greedy sends all three at 0. The second leaves for
        // a message of its own at 3 (a whole message at fee 1 costs less than its share at 9),
        // and the third joins it there.
        let early: [(Int64, Int64)] = [(0, 1), (0, 6), (0, 7)]
        let greedy = Hindsight.greedy(windows: early, pricing: .init(fees: fees, gas: gas, premium: premium), batchMax: 20)
        #expect(greedy == [Hindsight.Message(epoch: 0, items: [0, 1, 2])])
        let schedule = Hindsight.schedule(windows: early, fees: fees, gas: gas, premium: premium, batchMax: 20)
        #expect(schedule.map { Hindsight.Message(epoch: $0.epoch, items: $0.items.sorted()) }
            == [Hindsight.Message(epoch: 0, items: [0]), Hindsight.Message(epoch: 3, items: [1, 2])])
    }

    /// Two uploads in a message at fee 3 (×10⁸) can go at a dip of 1 later in their windows. Alone,
    /// neither gains by a message of its own there (its fixed gas at 1 costs more than its share
    /// at 3 saves), so moving one upload at a time never opens it; together they gain.
    @Test func uploadsOpenAMessageAtADipTogether() {
        let fees: [Int128] = [3, 3, 3, 1].map { $0 * 100_000_000 }
        let windows: [(Int64, Int64)] = [(0, 0), (0, 3), (0, 3)]
        let pricing = Hindsight.Pricing(fees: fees, gas: gas, premium: premium)
        var messages = [Hindsight.Message(epoch: 0, items: [0, 1, 2])]
        var at = [0, 0, 0]
        // One upload: what it saves by leaving is less than a message of its own at the dip costs.
        #expect(pricing.cost(0, 3) - pricing.cost(0, 2) < pricing.cost(3, 1))
        let dips = Hindsight.dips(pricing: pricing, count: fees.count)
        #expect(dips.first == 3)
        let before = Hindsight.cost(messages, fees: fees, gas: gas, premium: premium)
        #expect(Hindsight.openMessages(at: dips, covering: Hindsight.covering(windows: windows, dips: dips), messages: &messages,
                                       placed: &at, pricing: pricing, batchMax: 20))
        #expect(messages == [Hindsight.Message(epoch: 0, items: [0]), Hindsight.Message(epoch: 3, items: [1, 2])])
        #expect(at == [0, 1, 1])
        #expect(Hindsight.cost(messages, fees: fees, gas: gas, premium: premium) < before)
        #expect(Hindsight.schedule(windows: windows, fees: fees, gas: gas, premium: premium, batchMax: 20).map(\.epoch) == [0, 3])
    }

    /// A message of two uploads at fee 4 between two messages at fee 5 that must go anyway: each
    /// upload alone adds more to a neighbour (5) than it saves by leaving (4), but once both
    /// leave, the whole message's fixed gas is saved too.
    @Test func aMessageClosesWhenItsUploadsFitInOthers() {
        let fees: [Int128] = [5, 5, 4, 5, 5].map { $0 * 100_000_000 }
        let windows: [(Int64, Int64)] = [(0, 0), (0, 4), (0, 4), (4, 4)]
        let pricing = Hindsight.Pricing(fees: fees, gas: gas, premium: premium)
        var messages = [Hindsight.Message(epoch: 0, items: [0]), Hindsight.Message(epoch: 2, items: [1, 2]),
                        Hindsight.Message(epoch: 4, items: [3])]
        var at = [0, 1, 1, 2]
        #expect(pricing.cost(2, 2) - pricing.cost(2, 1) < pricing.cost(0, 2) - pricing.cost(0, 1))
        let before = Hindsight.cost(messages, fees: fees, gas: gas, premium: premium)
        #expect(Hindsight.closeMessages(windows: windows, messages: &messages, placed: &at, pricing: pricing, batchMax: 20))
        #expect(messages[1].items.isEmpty)
        #expect(messages[0].items.count + messages[2].items.count == 4)
        #expect(Hindsight.cost(messages, fees: fees, gas: gas, premium: premium) < before)
        // With no room elsewhere (batches of one), it stays.
        var full = [Hindsight.Message(epoch: 0, items: [0]), Hindsight.Message(epoch: 2, items: [1, 2]),
                    Hindsight.Message(epoch: 4, items: [3])]
        var fullAt = [0, 1, 1, 2]
        #expect(!Hindsight.closeMessages(windows: windows, messages: &full, placed: &fullAt, pricing: pricing, batchMax: 1))
    }

    /// Two messages whose uploads' windows share an epoch become one there, when that costs less.
    @Test func twoMessagesMergeAtAnEpochTheirWindowsShare() {
        let fees: [Int128] = [5, 4, 6].map { $0 * 100_000_000 }
        let windows: [(Int64, Int64)] = [(0, 1), (1, 2)]
        let pricing = Hindsight.Pricing(fees: fees, gas: gas, premium: premium)
        var messages = [Hindsight.Message(epoch: 0, items: [0]), Hindsight.Message(epoch: 2, items: [1])]
        var at = [0, 1]
        #expect(Hindsight.mergeMessages(windows: windows, messages: &messages, placed: &at, pricing: pricing, batchMax: 20))
        #expect(messages == [Hindsight.Message(epoch: 1, items: [0, 1]), Hindsight.Message(epoch: 2, items: [])])
        #expect(at == [0, 0])
        // Windows that share no epoch never merge.
        var apart = [Hindsight.Message(epoch: 0, items: [0]), Hindsight.Message(epoch: 2, items: [1])]
        var apartAt = [0, 1]
        #expect(!Hindsight.mergeMessages(windows: [(0, 0), (2, 2)], messages: &apart, placed: &apartAt, pricing: pricing,
                                         batchMax: 20))
    }

    /// The yardstick prices a message as the simulated chain charges it: sent at height t, it
    /// pays `baseFeeHistory()[t]` (not the next height's).
    @Test func aMessageCostsWhatTheSimulatedChainCharges() async throws {
        var config = SimulatedChain.Config()
        config.trace = .spiky
        config.rule = .fip0115
        config.genesisMs = 0
        let clock = VirtualClock(startMs: 0)
        let chain = SimulatedChain(config: config, clock: clock.wallClock)
        for sendAt: Int64 in [3, 40, 41] {
            while try await chain.head().height < sendAt { clock.advance(ms: config.epochMs) }
            let head = try await chain.head()
            let message = ChainMessage(uploadIds: ["a", "b", "c"], gasLimit: gas.gasLimit(items: 3),
                                       feeCap: MessageFee.defaultFeeCap(baseFee: head.baseFee, premium: premium), premium: premium)
            let cid = try await chain.push(message)
            clock.advance(ms: config.epochMs)
            let receipt = try #require(try await chain.receipt(cid: cid))
            let fees = chain.baseFeeHistory()
            #expect(fees[Int(sendAt)] != fees[Int(sendAt) + 1])
            #expect(receipt.cost.total == Hindsight.cost([Hindsight.Message(epoch: sendAt, items: [0, 1, 2])],
                                                         fees: fees, gas: gas, premium: premium))
        }
    }

    /// Random traces and windows: every upload is sent once, inside its window, in batches of at
    /// most the maximum, and the schedule never costs more than the greedy one it starts from.
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func feasibleAndNeverWorseThanGreedy(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var fees: [Int128] = [100_000_000]
        for _ in 0..<400 {
            let step = Int128(rng.next() % 250) - 120  // -12% ... +12.9% an epoch
            fees.append(max(100, fees.last! + fees.last! * step / 1_000))
        }
        let windows: [(Int64, Int64)] = (0..<300).map { _ in
            let from = Int64(rng.next() % 300)
            return (from, from + [1, 29, 479][Int(rng.next() % 3)])
        }
        let batchMax = 7
        let schedule = Hindsight.schedule(windows: windows, fees: fees, gas: gas, premium: premium, batchMax: batchMax)
        let greedy = Hindsight.greedy(windows: windows, pricing: .init(fees: fees, gas: gas, premium: premium), batchMax: batchMax)
        #expect(schedule.flatMap(\.items).sorted() == Array(windows.indices))
        for m in schedule {
            #expect(!m.items.isEmpty && m.items.count <= batchMax)
            for i in m.items { #expect(windows[i].0 <= m.epoch && m.epoch <= windows[i].1) }
        }
        let cost = Hindsight.cost(schedule, fees: fees, gas: gas, premium: premium)
        let greedyCost = Hindsight.cost(greedy, fees: fees, gas: gas, premium: premium)
        #expect(cost <= greedyCost)
        #expect(cost < greedyCost, "the local search found nothing to improve on \(windows.count) random uploads")
        // It stops where none of its moves that need several uploads at once improves it: a
        // search that left one of them out would stop short of this on such instances.
        let pricing = Hindsight.Pricing(fees: fees, gas: gas, premium: premium)
        var at = [Int](repeating: 0, count: windows.count)
        for (m, message) in schedule.enumerated() {
            for i in message.items { at[i] = m }
        }
        let dips = Hindsight.dips(pricing: pricing, count: fees.count)
        var opened = schedule, openedAt = at
        #expect(!Hindsight.openMessages(at: dips, covering: Hindsight.covering(windows: windows, dips: dips), messages: &opened,
                                        placed: &openedAt, pricing: pricing, batchMax: batchMax))
        var closed = schedule, closedAt = at
        #expect(!Hindsight.closeMessages(windows: windows, messages: &closed, placed: &closedAt, pricing: pricing, batchMax: batchMax))
        var merged = schedule, mergedAt = at
        #expect(!Hindsight.mergeMessages(windows: windows, messages: &merged, placed: &mergedAt, pricing: pricing, batchMax: batchMax))
    }
}
