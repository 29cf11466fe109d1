/// A rule or KPI expression flattened for the hot path: postfix instructions over a value stack,
/// features read from slots the caller fills once per evaluation.
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
        case isNull(negated: Bool)
        /// Pops `count` items, then the value.
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
        case let .not(x, _): emit(x, slots: slots, into: &program); program.append(.not)
        case let .negate(x, _): emit(x, slots: slots, into: &program); program.append(.negate)
        case let .binary(op, l, r, _):
            emit(l, slots: slots, into: &program); emit(r, slots: slots, into: &program); program.append(.binary(op))
        case let .isNull(x, negated, _): emit(x, slots: slots, into: &program); program.append(.isNull(negated: negated))
        case let .inList(v, items, negated, _):
            emit(v, slots: slots, into: &program)
            for item in items { emit(item, slots: slots, into: &program) }
            program.append(.inList(count: items.count, negated: negated))
        case let .between(v, lo, hi, negated, _):
            for x in [v, lo, hi] { emit(x, slots: slots, into: &program) }
            program.append(.between(negated: negated))
        }
    }

    /// - Parameter stack: scratch space, left empty (kept by the caller across expressions).
    func evaluate(features: [RuleValue], stack: inout [RuleValue]) -> RuleValue {
        for instruction in program {
            switch instruction {
            case let .literal(value): stack.append(value)
            case let .feature(slot): stack.append(features[slot])
            case .not: stack.append(RuleOperations.not(stack.removeLast()))
            case .negate: stack.append(RuleOperations.negate(stack.removeLast()))
            case let .binary(op):
                let right = stack.removeLast()
                stack.append(RuleOperations.binary(op, stack.removeLast(), right))
            case let .isNull(negated): stack.append(RuleOperations.isNull(stack.removeLast(), negated: negated))
            case let .inList(count, negated):
                let value = RuleOperations.inList(stack[stack.count - count - 1], stack[(stack.count - count)...], negated: negated)
                stack.removeLast(count + 1)
                stack.append(value)
            case let .between(negated):
                let high = stack.removeLast(), low = stack.removeLast()
                stack.append(RuleOperations.between(stack.removeLast(), low, high, negated: negated))
            }
        }
        return stack.removeLast()
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

    func values(_ evaluator: FeatureEvaluator) -> [RuleValue] { features.map { RuleValue(evaluator.value(of: $0)) } }
}
