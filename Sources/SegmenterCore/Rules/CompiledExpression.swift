/// A rule or KPI expression flattened for the hot path: instructions in prefix order (an
/// operator, then its operands), features read from slots the caller fills once per evaluation.
///
/// Every user is evaluated at every event and timer; walking the `indirect` tree retained and
/// released each node it passed and called a closure per feature reference (a tenth of ingest's
/// CPU, measured). The operators are the tree walk's own (`RuleOperations`), so the two agree by
/// construction; the tree stays the form for explaining and type checking.
struct CompiledExpression: Sendable, Equatable {
    enum Instruction: Sendable, Equatable {
        case literal(RuleValue)
        /// Pushes the value of the catalog's feature at this slot (`FeatureSlots`).
        case feature(Int)
        case not, negate
        case binary(BinaryOperator)
        /// `feature op constant`, the commonest comparison, in one step.
        case compareFeature(slot: Int, BinaryOperator, RuleValue)
        case isNull(negated: Bool)
        /// The value, then `count` items.
        case inList(count: Int, negated: Bool)
        case between(negated: Bool)
    }

    let program: [Instruction]

    init(_ expression: RuleExpression, slots: FeatureSlots) {
        var program: [Instruction] = []
        Self.emit(expression, slots: slots, into: &program)
        self.program = program
    }

    private static func emit(_ e: RuleExpression, slots: FeatureSlots, into program: inout [Instruction]) {
        switch e {
        case let .literal(literal, _): program.append(.literal(RuleValue(literal)))
        case let .feature(feature, _): program.append(.feature(slots.index[feature]!))
        case let .not(x, _): program.append(.not); emit(x, slots: slots, into: &program)
        case let .negate(x, _): program.append(.negate); emit(x, slots: slots, into: &program)
        case let .binary(op, .feature(feature, _), .literal(literal, _), _) where op.isComparison:
            program.append(.compareFeature(slot: slots.index[feature]!, op, RuleValue(literal)))
        case let .binary(op, l, r, _):
            program.append(.binary(op)); emit(l, slots: slots, into: &program); emit(r, slots: slots, into: &program)
        case let .isNull(x, negated, _): program.append(.isNull(negated: negated)); emit(x, slots: slots, into: &program)
        case let .inList(v, items, negated, _):
            program.append(.inList(count: items.count, negated: negated))
            for x in [v] + items { emit(x, slots: slots, into: &program) }
        case let .between(v, lo, hi, negated, _):
            program.append(.between(negated: negated))
            for x in [v, lo, hi] { emit(x, slots: slots, into: &program) }
        }
    }

    func evaluate(features: UnsafeBufferPointer<RuleValue>) -> RuleValue {
        program.withUnsafeBufferPointer { program in
            var next = 0
            return Self.evaluate(program, &next, features)
        }
    }

    /// Evaluates the expression starting at `next`, leaving `next` after it.
    private static func evaluate(_ program: UnsafeBufferPointer<Instruction>, _ next: inout Int,
                                 _ features: UnsafeBufferPointer<RuleValue>) -> RuleValue {
        let instruction = program[next]
        next += 1
        switch instruction {
        case let .literal(value): return value
        case let .feature(slot): return features[slot]
        case .not: return RuleOperations.not(evaluate(program, &next, features))
        case .negate: return RuleOperations.negate(evaluate(program, &next, features))
        case let .compareFeature(slot, op, constant): return RuleOperations.binary(op, features[slot], constant)
        case let .binary(op):
            let left = evaluate(program, &next, features)
            return RuleOperations.binary(op, left, evaluate(program, &next, features))
        case let .isNull(negated): return RuleOperations.isNull(evaluate(program, &next, features), negated: negated)
        case let .inList(count, negated):
            let value = evaluate(program, &next, features)
            var items: [RuleValue] = []
            items.reserveCapacity(count)
            for _ in 0..<count { items.append(evaluate(program, &next, features)) }
            return RuleOperations.inList(value, items, negated: negated)
        case let .between(negated):
            let value = evaluate(program, &next, features)
            let low = evaluate(program, &next, features)
            return RuleOperations.between(value, low, evaluate(program, &next, features), negated: negated)
        }
    }
}

/// The features a catalog's rules and KPIs read, numbered: an evaluation computes each once.
struct FeatureSlots: Sendable, Equatable {
    let features: [Feature]
    let index: [Feature: Int]

    init(_ expressions: [RuleExpression]) {
        features = expressions.reduce(into: Set<Feature>()) { $0.formUnion($1.features) }.sorted { $0.description < $1.description }
        index = Dictionary(uniqueKeysWithValues: features.enumerated().map { ($0.element, $0.offset) })
    }

    /// Initializes `buffer` (at least `features.count` long) with each feature's value.
    func fill(_ buffer: UnsafeMutableBufferPointer<RuleValue>, _ evaluator: FeatureEvaluator) {
        features.withUnsafeBufferPointer { features in
            for index in features.indices { (buffer.baseAddress! + index).initialize(to: RuleValue(evaluator.value(of: features[index]))) }
        }
    }
}
