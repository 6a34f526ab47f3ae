import Foundation

/// A model of the base-fee market fitted to the base fees seen, knowing nothing else of the chain
/// (`BatchPolicy`'s model mode decides with it). The port of `scripts/model-policy`'s
/// `fitted_model`.
///
/// Levels are log10 of base fees. Outside climbs the level steps by `pull`·(level − `reference`)
/// plus noise (`noise`: equally likely steps); a climb steps up `climbStep` every epoch, starts
/// with probability `startChance` in an epoch outside one, and after j epochs goes on with
/// probability `goesOn[j]`. `Double` is right here: the model compares base fees and prices
/// nothing; what is paid stays `Int128`.
public struct FeeModel: Sendable, Equatable {
    /// log10 of the market's level: where a step outside climbs averages zero.
    public var reference: Double
    /// How far a step pulls the level back toward `reference` (negative).
    public var pull: Double
    /// The residual steps outside climbs: `noiseNodes` quantiles, equally likely.
    public var noise: [Double]
    /// A step of at least this (log10) is a climb's epoch.
    public var climbRise: Double
    /// The mean step of a climb's epoch (log10); nil when no climb was seen.
    public var climbStep: Double?
    public var startChance: Double
    /// P(a climb goes on after j epochs | it lasted j), j = 0..<`climbStates`.
    public var goesOn: [Double]

    public static let noiseNodes = 32
    /// Climbs longer than this count as this long less one.
    public static let climbStates = 60
    /// Fewest base fees (epochs) a fit is made from.
    public static let fitEpochsMin = 120

    public init(reference: Double, pull: Double, noise: [Double], climbRise: Double, climbStep: Double?,
                startChance: Double, goesOn: [Double]) {
        self.reference = reference
        self.pull = pull
        self.noise = noise
        self.climbRise = climbRise
        self.climbStep = climbStep
        self.startChance = startChance
        self.goesOn = goesOn
    }

    /// Fits the model to base fees (log10, oldest first); nil with fewer than `fitEpochsMin`.
    /// A climb's epoch is a rise of 5% or 3 robust standard deviations of the steps, whichever is
    /// more; the other steps, regressed on the level, give the market's level (where they average
    /// zero), the pull back there and the noise (the residuals' quantiles); the climbs give their
    /// mean step, how often they start and how long they last (each length's share of the
    /// finished climbs that reached it, a tenth of a climb more each way, so that one longer than
    /// any seen ends or goes on evenly).
    public static func fit(logs: [Double]) -> FeeModel? {
        guard logs.count >= fitEpochsMin, let low = logs.min(), let high = logs.max() else { return nil }
        let steps = zip(logs.dropFirst(), logs).map { $0 - $1 }
        let middle = median(steps)
        let spread = 1.4826 * median(steps.map { abs($0 - middle) })
        let rise = max(log10(1.05), 3 * spread)
        var xs: [Double] = [], ys: [Double] = []
        var climbSum = 0.0, climbCount = 0, run = 0
        var lengths: [Int] = []
        for (n, step) in steps.enumerated() {
            if step >= rise {
                climbSum += step
                climbCount += 1
                run += 1
            } else {
                xs.append(logs[n])
                ys.append(step)
                if run > 0 { lengths.append(run) }
                run = 0
            }
        }
        guard xs.count >= 2 else { return nil }
        let meanX = xs.reduce(0, +) / Double(xs.count), meanY = ys.reduce(0, +) / Double(ys.count)
        var sxy = 0.0, sxx = 0.0
        for (x, y) in zip(xs, ys) {
            sxy += (x - meanX) * (y - meanY)
            sxx += (x - meanX) * (x - meanX)
        }
        let fittedB = sxx > 0 ? sxy / sxx : 0
        let a = meanY - fittedB * meanX
        let b = min(fittedB, -1e-4)
        let reference = min(max(-a / b, low), high)
        let residuals = zip(xs, ys).map { $1 - (a + b * $0) }.sorted()
        let noise = (0..<noiseNodes).map { quantile(residuals, (Double($0) + 0.5) / Double(noiseNodes)) }
        var goesOn = [0.0]
        var climbStep: Double?
        if !lengths.isEmpty {
            climbStep = climbSum / Double(climbCount)
            goesOn = (0..<climbStates).map { j in
                (Double(lengths.count(where: { $0 >= j + 1 })) + 0.1) / (Double(lengths.count(where: { $0 >= j })) + 0.2)
            }
        }
        return FeeModel(reference: reference, pull: b, noise: noise, climbRise: rise, climbStep: climbStep,
                        startChance: Double(lengths.count) / Double(max(1, xs.count)), goesOn: goesOn)
    }

    static func median(_ values: [Double]) -> Double { quantile(values.sorted(), 0.5) }

    /// numpy's default (linear) quantile of sorted values.
    static func quantile(_ sorted: [Double], _ p: Double) -> Double {
        let at = p * Double(sorted.count - 1)
        let i = min(Int(at), sorted.count - 1)
        let frac = at - Double(i)
        return i + 1 < sorted.count ? sorted[i] * (1 - frac) + sorted[i + 1] * frac : sorted[i]
    }
}

/// What waiting is worth to an upload, by dynamic programming over a grid of levels (log10 of the
/// base fee over the model's `reference`) and the epochs a climb has lasted: `worth(...)`, in
/// base fees at the market's level per unit of per-upload gas, is what an upload with k epochs of
/// its window left (this one included) expects to pay if from the next epoch on it rides a
/// message that comes with probability `messageChance` each epoch whenever the base fee is at or
/// below what waiting is then worth, and at the end of its window goes alone for `alone` more
/// (a share of a message's fixed gas over the per-upload gas).
public struct WaitValues: Sendable {
    public static let low = -1.5, high = 5.0

    public let model: FeeModel
    public let points: Int
    public let epochsMax: Int
    public let states: Int
    /// [k][state][point], k = 0...epochsMax (rows 0 and 1 unused).
    private let wait: [Float]

    public init(model: FeeModel, messageChance q: Double, alone: Double, epochsMax: Int, points: Int = 651) {
        precondition(points >= 3 && epochsMax >= 1)
        self.model = model
        self.points = points
        self.epochsMax = epochsMax
        let states = Self.states(model)
        self.states = states
        let row = states * points
        var wait = [Float](repeating: 0, count: (epochsMax + 1) * row)
        Self.program(model: model, messageChance: q, alone: alone, epochsMax: epochsMax, points: points) { k, out in
            for c in 0..<row { wait[k * row + c] = out[c] }
        }
        self.wait = wait
    }

    static func states(_ model: FeeModel) -> Int { model.climbStep == nil ? 1 : model.goesOn.count }

    /// The dynamic program: row k = 2...epochsMax of what waiting is worth, [state][point], in
    /// order, each handed to `row` (a row is computed from the one before).
    static func program(model: FeeModel, messageChance q: Double, alone: Double, epochsMax: Int, points: Int,
                        row takeRow: (Int, [Float]) -> Void) {
        let states = Self.states(model)
        let level = (0..<points).map { Self.level(point: $0, points: points) }
        let fee = level.map { pow(10, $0) }
        // The step outside climbs as a banded matrix: each point's mean over the noise's equally
        // likely next levels, each shared between its two grid neighbours.
        var bandStart = [Int](repeating: 0, count: points), bandWeights = [[Double]](repeating: [], count: points)
        for i in 0..<points {
            var weights: [Int: Double] = [:]
            for n in model.noise {
                let (j, frac) = Self.interpolation(level[i] * (1 + model.pull) + n, points: points)
                weights[j, default: 0] += (1 - frac) / Double(model.noise.count)
                weights[j + 1, default: 0] += frac / Double(model.noise.count)
            }
            let first = weights.keys.min()!, last = weights.keys.max()!
            bandStart[i] = first
            bandWeights[i] = (first...last).map { weights[$0] ?? 0 }
        }
        let climb = model.climbStep.map { step in level.map { Self.interpolation($0 + step, points: points) } } ?? []
        let goesOn = model.goesOn
        let start = model.startChance

        var v = [Double](repeating: 0, count: states * points)
        for s in 0..<states { for i in 0..<points { v[s * points + i] = fee[i] * (1 + alone) } }
        var out = [Double](repeating: 0, count: states * points)
        var rowOut = [Float](repeating: 0, count: states * points)
        var normal = [Double](repeating: 0, count: points)
        let row = states * points
        guard epochsMax >= 2 else { return }
        for k in 2...epochsMax {
            for i in 0..<points {
                var sum = 0.0
                for (o, w) in bandWeights[i].enumerated() { sum += w * v[bandStart[i] + o] }
                normal[i] = sum
            }
            if states == 1 {
                for i in 0..<points { out[i] = normal[i] }
            } else {
                for s in 1..<states {
                    let next = min(s + 1, states - 1) * points, g = goesOn[s]
                    for i in 0..<points {
                        let (j, frac) = climb[i]
                        let climbed = v[next + j] * (1 - frac) + v[next + j + 1] * frac
                        out[s * points + i] = g * climbed + (1 - g) * normal[i]
                    }
                }
                for i in 0..<points {
                    let (j, frac) = climb[i]
                    let climbed = v[points + j] * (1 - frac) + v[points + j + 1] * frac
                    out[i] = (1 - start) * normal[i] + start * climbed
                }
            }
            for c in 0..<row {
                rowOut[c] = Float(out[c])
                let w = Double(rowOut[c])
                v[c] = q * min(fee[c % points], w) + (1 - q) * w
            }
            takeRow(k, rowOut)
        }
    }

    /// The grid point at or below a level, and the share of the way to the next one (clipped to
    /// the grid).
    static func interpolation(_ level: Double, points: Int) -> (Int, Double) {
        let at = (min(max(level, low), high) - low) / (high - low) * Double(points - 1)
        let i = min(max(Int(at.rounded(.down)), 0), points - 2)
        return (i, at - Double(i))
    }

    /// The nearest grid point of a base fee's log10.
    public func point(log10BaseFee: Double) -> Int {
        let at = (log10BaseFee - model.reference - Self.low) / (Self.high - Self.low) * Double(points - 1)
        return min(max(Int(at.rounded()), 0), points - 1)
    }

    /// The base fee at a grid point, over the market's level.
    public func fee(point i: Int) -> Double {
        Self.fee(point: i, points: points)
    }

    /// The base fee at grid point i of `points`, over the market's level.
    static func fee(point i: Int, points: Int) -> Double {
        pow(10, level(point: i, points: points))
    }

    /// The level (log10 over the market's) of grid point i of `points`.
    static func level(point i: Int, points: Int) -> Double {
        low + Double(i) * (high - low) / Double(points - 1)
    }

    /// What waiting is worth with `epochsLeft` (≥ 2; more than `epochsMax` counts as that) at
    /// grid point i, `climb` epochs into a climb (0: none).
    public func worth(epochsLeft: Int, climb: Int, point i: Int) -> Double {
        let k = min(max(epochsLeft, 2), epochsMax)
        return Double(wait[Self.cell(epochsLeft: k, climb: climb, point: i, states: states, points: points)])
    }

    /// Where row k's value for a climb state and grid point sits, [k][state][point], in a table
    /// of `states` climb states and `points` grid points (the program's layout, for `WaitValues`
    /// and `StoppingRule` alike); the climb is clipped to the last state.
    static func cell(epochsLeft k: Int, climb: Int, point i: Int, states: Int, points: Int) -> Int {
        (k * states + min(climb, states - 1)) * points + i
    }
}

/// When a message that nothing else will join should go (the quiet rule in the model mode,
/// `BatchPolicy.quietTick`): the optimal stopping rule for a base fee paid once, k epochs from
/// now at the latest. It is `WaitValues`'s program with a message at every epoch (the message is
/// its own, so it can go at any one) and nothing more at the end: `go(...)` where the base fee is
/// at or below what waiting is worth. Kept as one bit per level, climb state and epochs left.
public struct StoppingRule: Sendable {
    public let points: Int
    public let epochsMax: Int
    let states: Int
    /// Bit (k·states + state)·points + point: go. Rows 0 and 1 unused (the deadline goes).
    private let bits: [UInt64]

    public init(model: FeeModel, epochsMax: Int, points: Int = 651) {
        precondition(points >= 3 && epochsMax >= 1)
        self.points = points
        self.epochsMax = epochsMax
        let states = WaitValues.states(model)
        self.states = states
        let row = states * points
        let fee = (0..<points).map { Float(WaitValues.fee(point: $0, points: points)) }
        var bits = [UInt64](repeating: 0, count: ((epochsMax + 1) * row + 63) / 64)
        WaitValues.program(model: model, messageChance: 1, alone: 0, epochsMax: epochsMax, points: points) { k, worth in
            for c in 0..<row where fee[c % points] <= worth[c] {
                let bit = k * row + c
                bits[bit / 64] |= 1 << UInt64(bit % 64)
            }
        }
        self.bits = bits
    }

    /// Whether to go now with `epochsLeft` (this one included; more than `epochsMax` counts as
    /// that; 1 or less: the deadline, go) at grid point i (`WaitValues.point`), `climb` epochs
    /// into a climb.
    public func go(epochsLeft: Int, climb: Int, point i: Int) -> Bool {
        guard epochsLeft >= 2 else { return true }
        let bit = WaitValues.cell(epochsLeft: min(epochsLeft, epochsMax), climb: climb, point: min(max(i, 0), points - 1),
                                  states: states, points: points)
        return bits[bit / 64] & (1 << UInt64(bit % 64)) != 0
    }
}
