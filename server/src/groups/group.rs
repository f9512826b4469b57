//! One consumer group of the classic protocol: its members, generation, state and committed
//! offsets, and the rebalance state machine Kafka's `GroupCoordinator` runs:
//!
//! ```text
//!   Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//!     ▲                 ▲        ▲                                      │ leader's SyncGroup
//!     └─ last member ───┘        └── join / leave / expiry ──── Stable ◀┘
//! ```
//!
//! Everything here is synchronous and owned by the coordinator's shard (no locks): a request
//! that must wait for the rest of the group gets a [`Receiver`] that a later event completes.
//! Persisting (the group metadata record, offsets) is the caller's job (see `coordinator.rs`);
//! the group says when a record must be written.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::oneshot::{channel, Receiver, Sender};
use super::records::{GroupValue, MemberValue};
use crate::handlers::error;

/// How long a new member may sit in a join before it is dropped (Kafka's
/// `GroupCoordinator.NewMemberJoinTimeoutMs`): a client that sent JoinGroup and vanished.
pub const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// Longest client-id prefix of a member id: a client id may be up to 32 KiB, a member id must
/// still fit a Kafka string (i16 length) in the group record.
pub const MAX_MEMBER_ID_PREFIX_BYTES: usize = 255;

/// A new member id, `<client id>-<uuid>` as Kafka makes them.
fn new_member_id(client_id: &str) -> String {
    let mut end = client_id.len().min(MAX_MEMBER_ID_PREFIX_BYTES);
    while !client_id.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{}", &client_id[..end], uuid::Uuid::new_v4())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka reports in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Broker settings the state machine needs.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits
    /// for more members before completing.
    pub initial_rebalance_delay: Duration,
    /// `group.max.size`.
    pub max_size: usize,
}

#[derive(Debug)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new member must first get its id (MEMBER_ID_REQUIRED), then join with it.
    pub require_known_member_id: bool,
    /// v9+: a returning static leader is told to skip computing assignments.
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone, Default)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    pub fn error(error: i16, member_id: &str) -> JoinResult {
        JoinResult {
            error,
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: i16) -> SyncResult {
        SyncResult {
            error,
            ..Default::default()
        }
    }
}

/// What a JoinGroup gets from the state machine.
pub enum JoinAnswer {
    Now(JoinResult),
    /// Completed when the rebalance completes.
    Later(Receiver<JoinResult>),
    /// Answer once the group metadata record is written (a static member replaced in place).
    AfterStore(JoinResult),
}

/// What a SyncGroup gets from the state machine.
pub enum SyncAnswer {
    Now(SyncResult),
    Later(Receiver<SyncResult>),
    /// The leader's assignments: write the group record with them, then
    /// [`Group::apply_assignments`], then await the receiver.
    LeaderAssigned {
        answer: Receiver<SyncResult>,
        generation: i32,
        assignments: HashMap<String, Bytes>,
    },
}

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    awaiting_join: Option<Sender<JoinResult>>,
    awaiting_sync: Option<Sender<SyncResult>>,
    heartbeat_deadline: Instant,
    joined_at: Instant,
    is_new: bool,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    /// Whether a rejoin carries the same protocols (names and metadata, in order).
    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    fn session(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms.max(0) as u64)
    }

    /// Kafka's `shouldKeepAlive`: a member waiting in a join or a sync is not expired by its
    /// session timeout (the rebalance timeout bounds the join; a new member gets
    /// [`NEW_MEMBER_JOIN_TIMEOUT`]).
    fn alive_at(&self, now: Instant) -> bool {
        if self.awaiting_join.is_some() {
            !self.is_new || now < self.joined_at + NEW_MEMBER_JOIN_TIMEOUT
        } else if self.awaiting_sync.is_some() {
            true
        } else {
            now < self.heartbeat_deadline
        }
    }
}

/// A committed offset, with the position of its record in `__consumer_offsets` so that commits
/// whose writes complete out of order still leave the newest one in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    pub log_offset: i64,
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    /// Wall-clock ms of the last state change (Kafka's currentStateTimestamp).
    pub state_since_ms: i64,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they join or their session expires.
    pending_members: HashMap<String, Instant>,
    /// `group.instance.id` → member id of the static members.
    static_members: HashMap<String, String>,
    pub offsets: BTreeMap<(String, i32), Committed>,
    /// Offsets committed inside transactions that have not ended yet, by producer id
    /// (TxnOffsetCommit): applied to `offsets` by the commit marker, dropped by an abort.
    pub pending_txn_offsets: HashMap<i64, BTreeMap<(String, i32), Committed>>,
    /// Log offset of the newest group metadata record applied (replay and writes).
    pub metadata_log_offset: i64,
    join_deadline: Instant,
    /// The first rebalance of an empty group waits `initial_rebalance_delay` for more members.
    initial_delay_until: Option<Instant>,
    initial_delay_budget_end: Instant,
    new_member_added: bool,
    /// Set when a transition must be persisted by the caller (the group became Empty).
    store_needed: bool,
}

impl Group {
    pub fn new(id: &str, now: Instant, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_since_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            offsets: BTreeMap::new(),
            pending_txn_offsets: HashMap::new(),
            metadata_log_offset: -1,
            join_deadline: now,
            initial_delay_until: None,
            initial_delay_budget_end: now,
            new_member_added: false,
            store_needed: false,
        }
    }

    fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_since_ms = now_ms;
    }

    pub fn take_store_needed(&mut self) -> bool {
        std::mem::take(&mut self.store_needed)
    }

    /// Kafka's `isStaticMemberFenced`: the instance id is registered to another member id.
    fn fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|registered| registered != member_id)
    }

    /// The topics the members subscribed to, when every member speaks the consumer protocol
    /// (None: unknown, so every topic counts as subscribed).
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = Vec::new();
        for m in self.members.values() {
            topics.extend(super::consumer_protocol::subscription_topics(
                &m.metadata(protocol),
            )?);
        }
        Some(topics)
    }

    fn candidate_protocols(&self) -> Vec<String> {
        let Some(first) = self.members.values().next() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| self.members.values().all(|m| m.supports(name)))
            .collect()
    }

    /// Kafka's `supportsProtocols`: a joining member must share the protocol type and at least
    /// one protocol every current member supports.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.state == GroupState::Empty || self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        let candidates = self.candidate_protocols();
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| candidates.contains(name))
    }

    /// Each member votes for its most preferred protocol among those all support; most votes wins
    /// (ties: the first member's preference order).
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<usize> = vec![0; candidates.len()];
        for m in self.members.values() {
            if let Some(i) = m
                .protocols
                .iter()
                .find_map(|(name, _)| candidates.iter().position(|c| c == name))
            {
                votes[i] += 1;
            }
        }
        let best = votes.iter().copied().max()?;
        candidates
            .into_iter()
            .zip(votes)
            .find(|(_, v)| *v == best)
            .map(|(c, _)| c)
    }

    fn max_rebalance_timeout(&self) -> Duration {
        let ms = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0);
        Duration::from_millis(ms)
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    fn members_for_leader(&self, protocol: &str) -> Vec<JoinedMember> {
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    /// The join answer for the current generation (a member rejoining with nothing changed).
    fn current_generation(&self, member_id: &str) -> JoinResult {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        JoinResult {
            error: error::NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: if self.is_leader(member_id) {
                self.members_for_leader(&protocol)
            } else {
                Vec::new()
            },
        }
    }

    /// JoinGroup.
    pub fn join(&mut self, req: JoinRequest, now: Instant, now_ms: i64, t: &Timers) -> JoinAnswer {
        if self.state == GroupState::Dead {
            return JoinAnswer::Now(JoinResult::error(
                error::COORDINATOR_NOT_AVAILABLE,
                &req.member_id,
            ));
        }
        if req.member_id.is_empty() {
            return self.join_new_member(req, now, now_ms, t);
        }
        if self.pending_members.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return self.add_member_and_rebalance(id, req, now, now_ms, t);
        }
        if self.fenced(&req.member_id, req.instance_id.as_deref()) {
            return JoinAnswer::Now(JoinResult::error(error::FENCED_INSTANCE_ID, &req.member_id));
        }
        let Some(member) = self.members.get(&req.member_id) else {
            return JoinAnswer::Now(JoinResult::error(error::UNKNOWN_MEMBER_ID, &req.member_id));
        };
        let unchanged = member.same_protocols(&req.protocols);
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(req, now, now_ms, t),
            GroupState::CompletingRebalance if unchanged => {
                JoinAnswer::Now(self.current_generation(&req.member_id))
            }
            GroupState::Stable if unchanged && !self.is_leader(&req.member_id) => {
                JoinAnswer::Now(self.current_generation(&req.member_id))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(req, now, now_ms, t)
            }
            GroupState::Empty | GroupState::Dead => {
                JoinAnswer::Now(JoinResult::error(error::UNKNOWN_MEMBER_ID, &req.member_id))
            }
        }
    }

    fn join_new_member(
        &mut self,
        req: JoinRequest,
        now: Instant,
        now_ms: i64,
        t: &Timers,
    ) -> JoinAnswer {
        if !self.supports(&req.protocol_type, &req.protocols) {
            return JoinAnswer::Now(JoinResult::error(error::INCONSISTENT_GROUP_PROTOCOL, ""));
        }
        let new_id = new_member_id(&req.client_id);
        if let Some(instance) = req.instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(&old_id, new_id, req, now, now_ms, t);
            }
            return self.add_member_and_rebalance(new_id, req, now, now_ms, t);
        }
        if req.require_known_member_id {
            let deadline = now + Duration::from_millis(req.session_timeout_ms.max(0) as u64);
            self.pending_members.insert(new_id.clone(), deadline);
            return JoinAnswer::Now(JoinResult::error(error::MEMBER_ID_REQUIRED, &new_id));
        }
        self.add_member_and_rebalance(new_id, req, now, now_ms, t)
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        req: JoinRequest,
        now: Instant,
        now_ms: i64,
        t: &Timers,
    ) -> JoinAnswer {
        if self.members.len() >= t.max_size {
            return JoinAnswer::Now(JoinResult::error(error::GROUP_MAX_SIZE_REACHED, &member_id));
        }
        let (tx, rx) = channel();
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.state == GroupState::PreparingRebalance && self.initial_delay_until.is_some() {
            self.new_member_added = true;
        }
        if self.leader.is_none() {
            self.leader = Some(member_id.clone());
        }
        if let Some(instance) = &req.instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
        self.members.insert(
            member_id.clone(),
            Member {
                id: member_id,
                instance_id: req.instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                session_timeout_ms: req.session_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                awaiting_join: Some(tx),
                awaiting_sync: None,
                heartbeat_deadline: now + session,
                joined_at: now,
                is_new: true,
            },
        );
        self.maybe_prepare_rebalance(now, now_ms, t);
        self.try_complete_join(now, now_ms);
        JoinAnswer::Later(rx)
    }

    fn update_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        now: Instant,
        now_ms: i64,
        t: &Timers,
    ) -> JoinAnswer {
        let (tx, rx) = channel();
        let member = self
            .members
            .get_mut(&req.member_id)
            .expect("caller checked membership");
        member.protocols = req.protocols;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        // A second JoinGroup from the same member replaces the first (its connection is gone).
        member.awaiting_join = Some(tx);
        self.maybe_prepare_rebalance(now, now_ms, t);
        self.try_complete_join(now, now_ms);
        JoinAnswer::Later(rx)
    }

    /// A static member rejoined with a new member id (it restarted): the old id is fenced, the
    /// new one takes its place and assignment. While the group is stable and the protocols did
    /// not change, there is no rebalance (KIP-345).
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
        now: Instant,
        now_ms: i64,
        t: &Timers,
    ) -> JoinAnswer {
        let Some(mut member) = self.members.remove(old_id) else {
            return self.add_member_and_rebalance(new_id, req, now, now_ms, t);
        };
        if let Some(tx) = member.awaiting_join.take() {
            tx.send(JoinResult::error(error::FENCED_INSTANCE_ID, old_id));
        }
        if let Some(tx) = member.awaiting_sync.take() {
            tx.send(SyncResult::error(error::FENCED_INSTANCE_ID));
        }
        let protocols_changed = !member.same_protocols(&req.protocols);
        let old_leader = self.leader.clone().unwrap_or_default();
        let was_leader = self.is_leader(old_id);
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        member.id = new_id.clone();
        member.heartbeat_deadline = now + member.session();
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        let selected_unchanged = self
            .protocol_name
            .as_deref()
            .is_some_and(|p| req.protocols.iter().any(|(n, _)| n == p));
        let mut req = req;
        req.member_id = new_id.clone();
        match self.state {
            GroupState::Stable if !protocols_changed || selected_unchanged => {
                let member = self.members.get_mut(&new_id).expect("just inserted");
                member.protocols = req.protocols;
                member.client_id = req.client_id;
                member.client_host = req.client_host;
                member.rebalance_timeout_ms = req.rebalance_timeout_ms;
                member.session_timeout_ms = req.session_timeout_ms;
                let skip = req.supports_skip_assignment && was_leader;
                let protocol = self.protocol_name.clone().unwrap_or_default();
                JoinAnswer::AfterStore(JoinResult {
                    error: error::NONE,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    // Before v9 a returning leader is shown the old leader id, so that it does
                    // not recompute assignments; v9+ says so with skip_assignment.
                    leader: if skip { new_id.clone() } else { old_leader },
                    skip_assignment: skip,
                    member_id: new_id,
                    members: if skip {
                        self.members_for_leader(&protocol)
                    } else {
                        Vec::new()
                    },
                })
            }
            GroupState::CompletingRebalance if !protocols_changed => {
                JoinAnswer::Now(self.current_generation(&new_id))
            }
            _ => self.update_member_and_rebalance(req, now, now_ms, t),
        }
    }

    fn maybe_prepare_rebalance(&mut self, now: Instant, now_ms: i64, t: &Timers) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(now, now_ms, t);
        }
    }

    fn prepare_rebalance(&mut self, now: Instant, now_ms: i64, t: &Timers) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_assignments(error::REBALANCE_IN_PROGRESS);
        }
        let rebalance_timeout = self.max_rebalance_timeout();
        if self.state == GroupState::Empty && !t.initial_rebalance_delay.is_zero() {
            self.initial_delay_budget_end = now + rebalance_timeout;
            self.initial_delay_until =
                Some((now + t.initial_rebalance_delay).min(self.initial_delay_budget_end));
            self.new_member_added = false;
        } else {
            self.initial_delay_until = None;
        }
        self.join_deadline = now + rebalance_timeout;
        self.transition(GroupState::PreparingRebalance, now_ms);
    }

    /// Clears every member's assignment and answers every waiting SyncGroup with `error`.
    fn reset_assignments(&mut self, error: i16) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(tx) = m.awaiting_sync.take() {
                tx.send(SyncResult::error(error));
            }
        }
    }

    /// Completes the join phase if every member (and every pending member) has joined, or the
    /// rebalance timeout has passed; not during an initial delay.
    fn try_complete_join(&mut self, now: Instant, now_ms: i64) {
        if self.state != GroupState::PreparingRebalance || self.initial_delay_until.is_some() {
            return;
        }
        let all_joined = self.members.values().all(|m| m.awaiting_join.is_some())
            && self.pending_members.is_empty();
        if all_joined || now >= self.join_deadline {
            self.complete_join(now, now_ms);
        }
    }

    fn complete_join(&mut self, now: Instant, now_ms: i64) {
        self.initial_delay_until = None;
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in missing {
            tracing::info!(group = %self.id, member = %id, "member did not rejoin in time; removed");
            self.remove_member_only(&id);
        }
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty, now_ms);
            self.store_needed = true;
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(GroupState::CompletingRebalance, now_ms);
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let everyone = self.members_for_leader(&protocol);
        for m in self.members.values_mut() {
            m.is_new = false;
            m.heartbeat_deadline = now + m.session();
            if let Some(tx) = m.awaiting_join.take() {
                tx.send(JoinResult {
                    error: error::NONE,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    leader: leader.clone(),
                    skip_assignment: false,
                    member_id: m.id.clone(),
                    members: if m.id == leader {
                        everyone.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
    }

    /// SyncGroup.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> SyncAnswer {
        if self.fenced(member_id, instance_id) {
            return SyncAnswer::Now(SyncResult::error(error::FENCED_INSTANCE_ID));
        }
        if !self.members.contains_key(member_id) {
            return SyncAnswer::Now(SyncResult::error(error::UNKNOWN_MEMBER_ID));
        }
        if generation != self.generation {
            return SyncAnswer::Now(SyncResult::error(error::ILLEGAL_GENERATION));
        }
        let mismatch = |given: Option<&str>, ours: &Option<String>| {
            given.is_some_and(|g| ours.as_deref() != Some(g))
        };
        if mismatch(protocol_type, &self.protocol_type)
            || mismatch(protocol_name, &self.protocol_name)
        {
            return SyncAnswer::Now(SyncResult::error(error::INCONSISTENT_GROUP_PROTOCOL));
        }
        match self.state {
            GroupState::Empty => SyncAnswer::Now(SyncResult::error(error::UNKNOWN_MEMBER_ID)),
            GroupState::Dead => {
                SyncAnswer::Now(SyncResult::error(error::COORDINATOR_NOT_AVAILABLE))
            }
            GroupState::PreparingRebalance => {
                SyncAnswer::Now(SyncResult::error(error::REBALANCE_IN_PROGRESS))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = channel();
                let is_leader = self.is_leader(member_id);
                let member = self.members.get_mut(member_id).expect("checked above");
                member.awaiting_sync = Some(tx);
                member.heartbeat_deadline = now + member.session();
                if !is_leader {
                    return SyncAnswer::Later(rx);
                }
                let mut map: HashMap<String, Bytes> = self
                    .members
                    .keys()
                    .map(|id| (id.clone(), Bytes::new()))
                    .collect();
                for (id, assignment) in assignments {
                    if let Some(slot) = map.get_mut(&id) {
                        *slot = assignment;
                    }
                }
                SyncAnswer::LeaderAssigned {
                    answer: rx,
                    generation,
                    assignments: map,
                }
            }
            GroupState::Stable => {
                let member = self.members.get_mut(member_id).expect("checked above");
                member.heartbeat_deadline = now + member.session();
                SyncAnswer::Now(SyncResult {
                    error: error::NONE,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                })
            }
        }
    }

    /// Installs the leader's assignments (after their record was written) if the group is still
    /// in the generation they were computed for, and answers every waiting SyncGroup.
    pub fn apply_assignments(
        &mut self,
        generation: i32,
        assignments: HashMap<String, Bytes>,
        now_ms: i64,
    ) {
        if self.state != GroupState::CompletingRebalance || self.generation != generation {
            return;
        }
        for m in self.members.values_mut() {
            m.assignment = assignments.get(&m.id).cloned().unwrap_or_default();
            if let Some(tx) = m.awaiting_sync.take() {
                tx.send(SyncResult {
                    error: error::NONE,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                });
            }
        }
        self.transition(GroupState::Stable, now_ms);
    }

    /// The leader's assignments could not be written: back to a rebalance.
    pub fn assignments_failed(&mut self, generation: i32, now: Instant, now_ms: i64, t: &Timers) {
        if self.state == GroupState::CompletingRebalance && self.generation == generation {
            self.reset_assignments(error::COORDINATOR_NOT_AVAILABLE);
            self.prepare_rebalance(now, now_ms, t);
            self.try_complete_join(now, now_ms);
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        if self.fenced(member_id, instance_id) {
            return error::FENCED_INSTANCE_ID;
        }
        let state = self.state;
        let Some(member) = self.members.get_mut(member_id) else {
            return error::UNKNOWN_MEMBER_ID;
        };
        if generation != self.generation {
            return error::ILLEGAL_GENERATION;
        }
        match state {
            GroupState::Empty => error::UNKNOWN_MEMBER_ID,
            GroupState::Dead => error::COORDINATOR_NOT_AVAILABLE,
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.heartbeat_deadline = now + member.session();
                error::NONE
            }
            GroupState::PreparingRebalance => {
                member.heartbeat_deadline = now + member.session();
                error::REBALANCE_IN_PROGRESS
            }
        }
    }

    /// LeaveGroup for one member identity; the error for that member.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
        now_ms: i64,
        t: &Timers,
    ) -> i16 {
        let id = if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                None => return error::UNKNOWN_MEMBER_ID,
                Some(registered) if !member_id.is_empty() && registered != member_id => {
                    return error::FENCED_INSTANCE_ID
                }
                Some(registered) => registered.clone(),
            }
        } else {
            if self.pending_members.remove(member_id).is_some() {
                self.try_complete_join(now, now_ms);
                return error::NONE;
            }
            member_id.to_string()
        };
        if !self.members.contains_key(&id) {
            return error::UNKNOWN_MEMBER_ID;
        }
        self.remove_member(&id, now, now_ms, t);
        error::NONE
    }

    /// The coordinator is going away (broker shutdown): every waiting JoinGroup and SyncGroup is
    /// answered NOT_COORDINATOR, as Kafka answers them when a group is unloaded, so that clients
    /// look for the coordinator again and the shutdown does not wait for rebalances.
    pub fn unload(&mut self) {
        for m in self.members.values_mut() {
            if let Some(tx) = m.awaiting_join.take() {
                tx.send(JoinResult::error(error::NOT_COORDINATOR, &m.id));
            }
            if let Some(tx) = m.awaiting_sync.take() {
                tx.send(SyncResult::error(error::NOT_COORDINATOR));
            }
        }
    }

    /// Removes a member without touching the group's state (answers its waiting requests).
    fn remove_member_only(&mut self, id: &str) {
        let Some(mut m) = self.members.remove(id) else {
            return;
        };
        if let Some(instance) = &m.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(id) {
                self.static_members.remove(instance);
            }
        }
        if let Some(tx) = m.awaiting_join.take() {
            tx.send(JoinResult::error(error::UNKNOWN_MEMBER_ID, id));
        }
        if let Some(tx) = m.awaiting_sync.take() {
            tx.send(SyncResult::error(error::UNKNOWN_MEMBER_ID));
        }
        if self.is_leader(id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    /// Removes a member (left or expired) and rebalances the rest.
    fn remove_member(&mut self, id: &str, now: Instant, now_ms: i64, t: &Timers) {
        self.remove_member_only(id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, now_ms, t);
                self.try_complete_join(now, now_ms);
            }
            GroupState::PreparingRebalance => self.try_complete_join(now, now_ms),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Time-driven transitions: expired sessions and pending members, the end of an initial
    /// delay or of a rebalance timeout.
    pub fn tick(&mut self, now: Instant, now_ms: i64, t: &Timers) {
        let before = self.pending_members.len();
        self.pending_members.retain(|_, deadline| now < *deadline);
        if self.pending_members.len() != before {
            self.try_complete_join(now, now_ms);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.alive_at(now))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "session expired; member removed");
            self.remove_member(&id, now, now_ms, t);
        }
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if let Some(until) = self.initial_delay_until {
            if now < until {
                return;
            }
            if self.new_member_added && now < self.initial_delay_budget_end {
                self.new_member_added = false;
                self.initial_delay_until =
                    Some((now + t.initial_rebalance_delay).min(self.initial_delay_budget_end));
                return;
            }
            self.complete_join(now, now_ms);
            return;
        }
        if now >= self.join_deadline {
            self.complete_join(now, now_ms);
        }
    }

    /// Kafka's `validateOffsetCommit` for a classic group: NONE or the error of the commit.
    pub fn validate_commit(
        &self,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return error::COORDINATOR_NOT_AVAILABLE;
        }
        if generation < 0 && self.state == GroupState::Empty {
            return error::NONE;
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            if self.fenced(member_id, instance_id) {
                return error::FENCED_INSTANCE_ID;
            }
            if !self.members.contains_key(member_id) {
                return error::UNKNOWN_MEMBER_ID;
            }
            if generation != self.generation {
                return error::ILLEGAL_GENERATION;
            }
        } else if self.state != GroupState::Empty {
            return error::UNKNOWN_MEMBER_ID;
        }
        if self.state == GroupState::CompletingRebalance {
            return error::REBALANCE_IN_PROGRESS;
        }
        error::NONE
    }

    /// Offsets retention (`offsets.retention.minutes`, Kafka's rule since 2.1): the offsets of a
    /// group that has been Empty for `retention_ms` expire; a standalone group's (no protocol
    /// type: it never joined) expire `retention_ms` after each one's commit. Returns the expired
    /// keys and whether the whole group can then be forgotten (no members, no offsets left).
    pub fn expired_offsets(&self, now_ms: i64, retention_ms: i64) -> (Vec<(String, i32)>, bool) {
        if self.state != GroupState::Empty {
            return (Vec::new(), false);
        }
        let expired: Vec<(String, i32)> = self
            .offsets
            .iter()
            .filter(|(_, c)| {
                let since = if self.protocol_type.is_some() {
                    self.state_since_ms
                } else {
                    c.commit_timestamp_ms
                };
                since.saturating_add(retention_ms) <= now_ms
            })
            .map(|(k, _)| k.clone())
            .collect();
        let forget = expired.len() == self.offsets.len()
            && self.members.is_empty()
            && self.pending_members.is_empty()
            && self.pending_txn_offsets.is_empty();
        (expired, forget)
    }

    /// Applies a committed offset unless a newer record for it is already applied.
    pub fn apply_offset(&mut self, topic: &str, partition: i32, committed: Committed) {
        let key = (topic.to_string(), partition);
        match self.offsets.get(&key) {
            Some(c) if c.log_offset > committed.log_offset => {}
            _ => {
                self.offsets.insert(key, committed);
            }
        }
    }

    /// The group metadata record for the current state, with `assignments` in place of the
    /// members' current ones when given (the leader's, not yet applied).
    pub fn record_value(&self, assignments: Option<&HashMap<String, Bytes>>) -> GroupValue {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: self.state_since_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: assignments
                        .and_then(|a| a.get(&m.id).cloned())
                        .unwrap_or_else(|| m.assignment.clone()),
                })
                .collect(),
        }
    }

    /// Restores the group from its metadata record (start-up): a group with members comes back
    /// Stable, and each member has a fresh session to rejoin or heartbeat in.
    pub fn restore(&mut self, value: GroupValue, now: Instant) {
        self.protocol_type = (!value.protocol_type.is_empty()).then_some(value.protocol_type);
        self.generation = value.generation;
        self.protocol_name = value.protocol;
        self.leader = value.leader;
        self.state_since_ms = value.state_timestamp_ms;
        self.members.clear();
        self.static_members.clear();
        self.pending_members.clear();
        let protocol = self.protocol_name.clone().unwrap_or_default();
        for m in value.members {
            if let Some(instance) = &m.instance_id {
                self.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let session = Duration::from_millis(m.session_timeout_ms.max(0) as u64);
            self.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    protocols: vec![(protocol.clone(), m.subscription)],
                    assignment: m.assignment,
                    awaiting_join: None,
                    awaiting_sync: None,
                    heartbeat_deadline: now + session,
                    joined_at: now,
                    is_new: false,
                },
            );
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    const TIMERS: Timers = Timers {
        initial_rebalance_delay: Duration::ZERO,
        max_size: 100,
    };

    fn request(member_id: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            member_id: member_id.into(),
            instance_id: instance.map(str::to_string),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 10_000,
            session_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
            require_known_member_id: true,
            supports_skip_assignment: false,
        }
    }

    fn joined(answer: JoinAnswer) -> JoinResult {
        match answer {
            JoinAnswer::Now(r) | JoinAnswer::AfterStore(r) => r,
            JoinAnswer::Later(rx) => ready(rx),
        }
    }

    /// The answer of a waiting request, which must already have come (a test never hangs).
    fn ready<T>(mut rx: Receiver<T>) -> T {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::Pin::new(&mut rx).poll(&mut cx) {
            std::task::Poll::Ready(Some(v)) => v,
            std::task::Poll::Ready(None) => panic!("the group dropped the request"),
            std::task::Poll::Pending => panic!("the request is still waiting"),
        }
    }

    /// Joins a new dynamic member in two steps (MEMBER_ID_REQUIRED, then with the id).
    fn join_new(g: &mut Group, now: Instant) -> JoinAnswer {
        let first = joined(g.join(request("", None), now, 0, &TIMERS));
        assert_eq!(first.error, error::MEMBER_ID_REQUIRED);
        g.join(request(&first.member_id, None), now, 0, &TIMERS)
    }

    #[test]
    fn one_member_joins_syncs_and_is_stable() {
        let now = Instant::now();
        let mut g = Group::new("g", now, 0);
        let r = joined(join_new(&mut g, now));
        assert_eq!(r.error, error::NONE);
        assert_eq!(r.generation, 1);
        assert_eq!(r.leader, r.member_id);
        assert_eq!(r.members.len(), 1);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let SyncAnswer::LeaderAssigned {
            answer,
            generation,
            assignments,
        } = g.sync(
            &r.member_id,
            None,
            1,
            None,
            None,
            vec![(r.member_id.clone(), Bytes::from_static(b"a"))],
            now,
        )
        else {
            panic!("leader sync");
        };
        g.apply_assignments(generation, assignments, 0);
        let s = ready(answer);
        assert_eq!(s.assignment, Bytes::from_static(b"a"));
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.heartbeat(&r.member_id, None, 1, now), error::NONE);
        assert_eq!(
            g.heartbeat(&r.member_id, None, 0, now),
            error::ILLEGAL_GENERATION
        );
        assert_eq!(
            g.heartbeat("nobody", None, 1, now),
            error::UNKNOWN_MEMBER_ID
        );
    }

    #[test]
    fn a_second_member_triggers_a_rebalance_and_expired_members_leave() {
        let now = Instant::now();
        let mut g = Group::new("g", now, 0);
        let a = joined(join_new(&mut g, now));
        let SyncAnswer::LeaderAssigned {
            generation,
            assignments,
            ..
        } = g.sync(&a.member_id, None, 1, None, None, vec![], now)
        else {
            panic!("leader sync");
        };
        g.apply_assignments(generation, assignments, 0);
        // B joins: the group prepares a rebalance and waits for A.
        let b_answer = join_new(&mut g, now);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(
            g.heartbeat(&a.member_id, None, 1, now),
            error::REBALANCE_IN_PROGRESS
        );
        let a2 = joined(g.join(request(&a.member_id, None), now, 0, &TIMERS));
        let b = joined(b_answer);
        assert_eq!((a2.generation, b.generation), (2, 2));
        assert_eq!(a2.members.len(), 2, "the leader sees both members");
        assert!(b.members.is_empty());
        // Nobody heartbeats: after the session timeout both are gone and the group is Empty.
        g.tick(now + Duration::from_secs(11), 0, &TIMERS);
        assert_eq!(g.state, GroupState::Empty);
        assert!(g.members.is_empty());
        assert!(g.take_store_needed());
    }

    #[test]
    fn a_static_member_rejoining_while_stable_keeps_its_generation_and_fences_the_old_id() {
        let now = Instant::now();
        let mut g = Group::new("g", now, 0);
        let a = joined(g.join(request("", Some("i1")), now, 0, &TIMERS));
        assert_eq!(
            a.error,
            error::NONE,
            "static members skip MEMBER_ID_REQUIRED"
        );
        let SyncAnswer::LeaderAssigned {
            generation,
            assignments,
            ..
        } = g.sync(
            &a.member_id,
            Some("i1"),
            1,
            None,
            None,
            vec![(a.member_id.clone(), Bytes::from_static(b"p0"))],
            now,
        )
        else {
            panic!("leader sync");
        };
        g.apply_assignments(generation, assignments, 0);
        let again = g.join(request("", Some("i1")), now, 0, &TIMERS);
        let JoinAnswer::AfterStore(r) = again else {
            panic!("no rebalance expected");
        };
        assert_eq!(r.generation, 1);
        assert_ne!(r.member_id, a.member_id);
        assert_eq!(g.state, GroupState::Stable);
        let SyncAnswer::Now(s) = g.sync(&r.member_id, Some("i1"), 1, None, None, vec![], now)
        else {
            panic!("stable sync answers at once");
        };
        assert_eq!(s.assignment, Bytes::from_static(b"p0"));
        assert_eq!(
            g.heartbeat(&a.member_id, Some("i1"), 1, now),
            error::FENCED_INSTANCE_ID
        );
        assert_eq!(
            g.validate_commit(1, &a.member_id, Some("i1")),
            error::FENCED_INSTANCE_ID
        );
    }

    #[test]
    fn commits_are_validated_like_kafka() {
        let now = Instant::now();
        let mut g = Group::new("g", now, 0);
        assert_eq!(
            g.validate_commit(-1, "", None),
            error::NONE,
            "simple commit"
        );
        let a = joined(join_new(&mut g, now));
        assert_eq!(
            g.validate_commit(-1, "", None),
            error::UNKNOWN_MEMBER_ID,
            "only members commit to a non-empty group"
        );
        assert_eq!(
            g.validate_commit(1, &a.member_id, None),
            error::REBALANCE_IN_PROGRESS
        );
        assert_eq!(
            g.validate_commit(0, &a.member_id, None),
            error::ILLEGAL_GENERATION
        );
    }

    #[test]
    fn offsets_of_an_empty_group_expire_after_the_retention() {
        let now = Instant::now();
        let c = |ts| Committed {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: ts,
            log_offset: 0,
        };
        // A standalone group: each offset expires `retention` after its commit.
        let mut g = Group::new("g", now, 0);
        g.apply_offset("t", 0, c(1_000));
        g.apply_offset("t", 1, c(5_000));
        assert_eq!(g.expired_offsets(1_999, 1_000), (vec![], false));
        assert_eq!(
            g.expired_offsets(2_000, 1_000),
            (vec![("t".into(), 0)], false)
        );
        assert!(g.expired_offsets(6_000, 1_000).1);
        // A consumer group: nothing expires while it has members; once Empty, all together,
        // `retention` after it became Empty.
        let mut g = Group::new("g", now, 0);
        let a = joined(join_new(&mut g, now));
        g.apply_offset("t", 0, c(0));
        assert_eq!(g.expired_offsets(i64::MAX, 1), (vec![], false));
        assert_eq!(
            g.leave(&a.member_id, None, now, 10_000, &TIMERS),
            error::NONE
        );
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.state_since_ms, 10_000);
        assert_eq!(g.expired_offsets(10_999, 1_000), (vec![], false));
        assert_eq!(
            g.expired_offsets(11_000, 1_000),
            (vec![("t".into(), 0)], true)
        );
    }

    /// Forms a stable group of `n` dynamic members; returns their member ids, leader first.
    fn stable_group(g: &mut Group, n: usize, now: Instant) -> Vec<String> {
        // Every member first gets its id (pending members hold the join open), then all join.
        let ids: Vec<String> = (0..n)
            .map(|_| joined(g.join(request("", None), now, 0, &TIMERS)).member_id)
            .collect();
        let answers: Vec<JoinAnswer> = ids
            .iter()
            .map(|id| g.join(request(id, None), now, 0, &TIMERS))
            .collect();
        let results: Vec<JoinResult> = answers.into_iter().map(joined).collect();
        let generation = g.generation;
        let leader = g.leader.clone().unwrap();
        let SyncAnswer::LeaderAssigned {
            generation: gen,
            assignments,
            ..
        } = g.sync(&leader, None, generation, None, None, vec![], now)
        else {
            panic!("leader sync");
        };
        g.apply_assignments(gen, assignments, 0);
        assert_eq!(g.state, GroupState::Stable);
        let mut ids: Vec<String> = results.into_iter().map(|r| r.member_id).collect();
        ids.sort_by_key(|id| *id != leader);
        ids
    }

    #[test]
    fn a_member_that_does_not_rejoin_within_the_rebalance_timeout_is_removed() {
        let now = Instant::now();
        let mut g = Group::new("g", now, 0);
        let ids = stable_group(&mut g, 2, now);
        let generation = g.generation;
        // The follower rejoins (new metadata → rebalance); the leader never does, though it
        // keeps heartbeating, which does not count as rejoining.
        let mut req = request(&ids[1], None);
        req.protocols = vec![("range".into(), Bytes::from_static(b"new"))];
        let waiting = g.join(req, now, 0, &TIMERS);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        let later = now + Duration::from_secs(5);
        assert_eq!(
            g.heartbeat(&ids[0], None, generation, later),
            error::REBALANCE_IN_PROGRESS
        );
        g.tick(later, 0, &TIMERS);
        assert_eq!(
            g.state,
            GroupState::PreparingRebalance,
            "before the timeout"
        );
        g.tick(now + Duration::from_secs(10), 0, &TIMERS);
        let r = joined(waiting);
        assert_eq!(r.error, error::NONE);
        assert_eq!(r.generation, generation + 1);
        assert_eq!(r.leader, ids[1], "the member that rejoined leads now");
        assert_eq!(r.members.len(), 1);
        assert!(!g.members.contains_key(&ids[0]));
    }

    #[test]
    fn when_the_leader_leaves_a_remaining_member_leads_the_next_generation() {
        let now = Instant::now();
        let mut g = Group::new("g", now, 0);
        let ids = stable_group(&mut g, 3, now);
        assert_eq!(g.leave(&ids[0], None, now, 0, &TIMERS), error::NONE);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        let a = g.join(request(&ids[1], None), now, 0, &TIMERS);
        let b = g.join(request(&ids[2], None), now, 0, &TIMERS);
        let (a, b) = (joined(a), joined(b));
        assert_eq!(a.leader, b.leader);
        assert!(ids[1..].contains(&a.leader));
        let leader_view = if a.member_id == a.leader { &a } else { &b };
        assert_eq!(leader_view.members.len(), 2);
        assert_eq!(
            g.leave("nobody", None, now, 0, &TIMERS),
            error::UNKNOWN_MEMBER_ID
        );
    }

    #[test]
    fn unloading_answers_waiting_requests_not_coordinator() {
        let now = Instant::now();
        let mut g = Group::new("g", now, 0);
        let ids = stable_group(&mut g, 2, now);
        let waiting = g.join(request(&ids[0], None), now, 0, &TIMERS);
        g.unload();
        assert_eq!(joined(waiting).error, error::NOT_COORDINATOR);
    }

    #[test]
    fn member_ids_stay_short_whatever_the_client_id() {
        let long = "é".repeat(20_000);
        let id = new_member_id(&long);
        assert!(id.len() <= MAX_MEMBER_ID_PREFIX_BYTES + 37, "{}", id.len());
        assert!(new_member_id("c").starts_with("c-"));
    }

    #[test]
    fn offsets_applied_out_of_order_keep_the_newest_record() {
        let now = Instant::now();
        let mut g = Group::new("g", now, 0);
        let c = |offset, log_offset| Committed {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
            log_offset,
        };
        g.apply_offset("t", 0, c(20, 2));
        g.apply_offset("t", 0, c(10, 1));
        assert_eq!(g.offsets[&("t".to_string(), 0)].offset, 20);
    }
}
