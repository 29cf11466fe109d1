/// A user's memberships by the catalog's segment slots (`all`, then the rules in order), for
/// the batch step while it runs one user's timeline: each evaluation compares and updates them
/// by position, with no segment name hashed (measured: the lookups into the name-keyed
/// dictionary were the largest part of an evaluation's hashing). `UserSlice.memberships` is
/// the stored form; a timeline converts once at each end.
struct SlotMemberships: Equatable {
    /// Per slot, the member's KPI contributions; nil: not a member.
    var slots: [[Double?]?]
    /// Stored memberships of segments the catalog no longer defines: the next evaluation leaves them.
    var undefined: [String: [Double?]]

    init(_ memberships: [String: [Double?]], catalog: SegmentCatalog) {
        slots = Array(repeating: nil, count: catalog.segmentSlots.count)
        undefined = [:]
        for (segment, contributions) in memberships {
            if let slot = catalog.slotOfSegment[segment] { slots[slot] = contributions } else { undefined[segment] = contributions }
        }
    }

    var isEmpty: Bool { undefined.isEmpty && !slots.contains { $0 != nil } }

    /// The stored form.
    func dictionary(catalog: SegmentCatalog) -> [String: [Double?]] {
        var memberships = undefined
        for (slot, contributions) in zip(catalog.segmentSlots, slots) where contributions != nil { memberships[slot.name] = contributions }
        return memberships
    }

    /// The membership rows that differ from `stored`: per segment, the contributions now (nil: left).
    func changes(from stored: SlotMemberships, catalog: SegmentCatalog) -> [(segment: String, contributions: [Double?]?)] {
        var changes: [(segment: String, contributions: [Double?]?)] = []
        for index in slots.indices where slots[index] != stored.slots[index] {
            changes.append((catalog.segmentSlots[index].name, slots[index]))
        }
        for (segment, contributions) in undefined where stored.undefined[segment] != contributions { changes.append((segment, contributions)) }
        for segment in stored.undefined.keys where undefined[segment] == nil { changes.append((segment, nil)) }
        return changes
    }
}
