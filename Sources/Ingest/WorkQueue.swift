import Foundation

/// A bounded FIFO between two threads: `put` blocks while full (back-pressure on the poller),
/// `take` blocks while empty. After `close`, `put` refuses and `take` drains what is left.
final class WorkQueue<Element>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [Element] = []
    private var head = 0
    private let capacity: Int
    private(set) var isClosed = false

    init(capacity: Int) { self.capacity = capacity }

    /// Returns false if the queue was closed (the consumer side has gone).
    @discardableResult
    func put(_ item: Element) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while items.count - head >= capacity && !isClosed { condition.wait() }
        guard !isClosed else { return false }
        items.append(item)
        condition.broadcast()
        return true
    }

    /// Folds `item` into the last waiting item when `merge` accepts it (returns true); otherwise
    /// puts it as usual. A consumer that falls behind then takes one larger batch instead of
    /// several small ones, each of which would pay a commit's fixed cost.
    @discardableResult
    func put(_ item: Element, mergingInto merge: (inout Element, Element) -> Bool) -> Bool {
        condition.lock()
        if !isClosed, head < items.count, merge(&items[items.count - 1], item) {
            condition.broadcast()
            condition.unlock()
            return true
        }
        condition.unlock()
        return put(item)
    }

    /// The next item, or nil after `timeout` seconds or once closed and empty.
    func take(timeout: TimeInterval) -> Element? {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(timeout)
        while head == items.count {
            if isClosed || !condition.wait(until: deadline) { return nil }
        }
        let item = items[head]
        head += 1
        if head > 64 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        condition.broadcast()
        return item
    }

    func close() {
        condition.lock()
        isClosed = true
        condition.broadcast()
        condition.unlock()
    }
}

/// A one-shot answer from the commit thread to the poll thread.
final class Reply<Value>: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: Value?
    private var abandoned = false

    func send(_ value: Value) {
        condition.lock()
        self.value = value
        condition.broadcast()
        condition.unlock()
    }

    /// Wakes the waiter without a value (the commit thread stopped).
    func abandon() {
        condition.lock()
        abandoned = true
        condition.broadcast()
        condition.unlock()
    }

    func wait() -> Value? {
        condition.lock()
        defer { condition.unlock() }
        while value == nil && !abandoned { condition.wait() }
        return value
    }
}
