using System.Security.Cryptography;
using System.Text;
using JasperFx.Events;
using PamEventStore.Crypto;
using PamEventStore.Recording;
using PamEventStore.Sessions;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Sessions;

/// <summary>
/// The pure decision functions of the session aggregate: a session is built by applying events, what is
/// stored at older offsets is kept in a list standing in for <see cref="RecordedBatch"/>. No database.
/// </summary>
public sealed class when_deciding_uploads
{
    private static readonly DateTimeOffset Created = new(2026, 12, 4, 9, 59, 0, TimeSpan.Zero);
    private static readonly TimeSpan Grace = TimeSpan.FromMinutes(2);
    private static readonly Actor Gateway = new("gateway", "gw-1", "gw-1", "req-1");

    /// <summary>The org's fingerprint key: stored fingerprints are keyed, never a bare hash of the content.</summary>
    private static readonly ContentFingerprint Keys = new(Enumerable.Repeat((byte)9, 32).ToArray());
    private static readonly Actor RetryingGateway = new("gateway", "gw-1", "gw-1", "req-2");

    private DateTimeOffset _now = Created.AddMinutes(1);
    private PamSession _session = PamSession.Create(new SessionStarted(
        Guid.NewGuid(), "project-1", "ssh", "prod-bastion", "root", "user-1", "gw-1", Created.AddHours(1), Created, new Actor("user", "user-1", null, "req-0")));
    private readonly List<BatchUploaded> _stored = [];

    private static RecordingBatch Content(string json)
    {
        RecordingParser.TryParseBatch(Encoding.UTF8.GetBytes(json), out var batch, out var error).ShouldBeTrue($"refused: {error}");
        return batch!;
    }

    private static RecordingBatch LegacyContent(string json)
    {
        RecordingParser.TryParseLegacyLogs(Encoding.UTF8.GetBytes(json), out var batch, out var error).ShouldBeTrue($"refused: {error}");
        return batch!;
    }

    /// <summary>Terminal output lines <paramref name="first"/> to first + count - 1, as one batch.</summary>
    private static RecordingBatch Events(int first, int count) => Content(Lines(first, count));

    private static string Text(RecordingBatch batch) => Encoding.UTF8.GetString(batch.Canonical.Span);

    /// <summary>What is stored at an offset, the segments of what <see cref="RecordedBatch.StoredAtAsync"/> reads.</summary>
    private IReadOnlyList<OffsetSegment> SegmentsAt(long startOffset) =>
        _stored.Where(b => b.StartOffset == startOffset)
            .OrderBy(b => b.Sequence)
            .Select(b => new OffsetSegment(b.FirstEventIndex + b.EventCount, b.OffsetFingerprint))
            .ToList();

    /// <summary>Decides as the upload endpoint does: stored segments are looked up only when asked for.</summary>
    private UploadDecision Decide(long startOffset, RecordingBatch content, long? endOffset = null, Actor? actor = null)
    {
        var stored = BatchUploadRules.NeedsStoredSegments(_session, startOffset) ? SegmentsAt(startOffset) : null;
        return BatchUploadRules.Decide(_session, new IncomingBatch(startOffset, endOffset, content, Keys), stored, actor ?? Gateway, _now, Grace);
    }

    /// <summary>Decides, then applies whatever the decision stores.</summary>
    private UploadDecision Upload(long startOffset, RecordingBatch content, long? endOffset = null)
    {
        var decision = Decide(startOffset, content, endOffset);
        switch (decision)
        {
            case AcceptBatch accept:
                foreach (var e in accept.Events(accept.Batch))
                {
                    _session = e switch
                    {
                        SessionActivated activated => _session.Apply(activated),
                        GapDetected gap => _session.Apply(gap),
                        BatchUploaded batch => _session.Apply(batch),
                        _ => throw new InvalidOperationException($"unexpected event {e}"),
                    };
                }

                _stored.Add(accept.Batch);
                break;

            case RejectBatch { Conflict: { } conflict }:
                _session = _session.Apply(conflict);
                break;

            case RejectBatch { Late: { } late }:
                _session = _session.Apply(late);
                break;
        }

        return decision;
    }

    private void End() => _session = PamSession.Replay(_session, new SessionEnded(_now, Gateway, "cancellation"), _session.Version + 1)!;

    /// <param name="recorded">Whether a conflict is recorded.</param>
    /// <param name="lost">Whether a late refusal is recorded.</param>
    private static void ShouldBeRejected(UploadDecision decision, Rejection reason, bool recorded, bool lost = false)
    {
        var reject = decision.ShouldBeOfType<RejectBatch>();
        reject.Reason.ShouldBe(reason);
        if (recorded) reject.Conflict.ShouldNotBeNull();
        else reject.Conflict.ShouldBeNull();
        if (lost) reject.Late.ShouldNotBeNull();
        else reject.Late.ShouldBeNull();
    }

    /// <summary>Refused, and the refusal recorded with what was sent, by whom and when.</summary>
    private void ShouldRecordConflict(UploadDecision decision, Rejection reason, string why, long startOffset, long? endOffset, RecordingBatch rejected)
    {
        ShouldBeRejected(decision, reason, recorded: true);
        var conflict = ((RejectBatch)decision).Conflict!;
        conflict.StartOffset.ShouldBe(startOffset);
        conflict.EndOffset.ShouldBe(endOffset);
        conflict.Reason.ShouldBe(why);
        conflict.RejectedFingerprint.ShouldBe(Keys.Of(rejected.Sha256()));
        conflict.RejectedEventCount.ShouldBe(rejected.EventCount);
        conflict.RejectedFrom.ShouldBe(Gateway);
        conflict.At.ShouldBe(_now);
    }

    // ---- new offsets ----

    [Fact]
    public void fewer_events_than_stored_may_be_its_first_events_until_they_were_the_last_conflict_there()
    {
        Upload(0, Events(0, 5));
        var fewer = new IncomingBatch(0, null, Events(1, 2), Keys);

        // Only the stored content can tell: the writer opens it, once.
        BatchUploadRules.MayBeStoredPrefix(_session, fewer, null).ShouldBeTrue();
        Upload(0, Events(1, 2));

        // Recorded as the conflict then: the same content sent again on the next tick is not opened again.
        BatchUploadRules.MayBeStoredPrefix(_session, fewer, null).ShouldBeFalse();
        BatchUploadRules.MayBeStoredPrefix(_session, new IncomingBatch(0, null, Events(0, 2), Keys), null).ShouldBeTrue();
        BatchUploadRules.MayBeStoredPrefix(_session, new IncomingBatch(0, null, Events(0, 5), Keys), null).ShouldBeFalse();
    }

    [Fact]
    public void the_first_upload_of_a_starting_session_is_batch_zero_and_activates_the_session()
    {
        var content = Events(0, 3);

        var accept = Decide(0, content, 300).ShouldBeOfType<AcceptBatch>();

        accept.Activation.ShouldBe(new SessionActivated(_now));
        accept.Gap.ShouldBeNull();
        accept.Content.ShouldBeSameAs(content);
        var batch = accept.Batch;
        batch.Sequence.ShouldBe(0);
        batch.StartOffset.ShouldBe(0);
        batch.EndOffset.ShouldBe(300);
        batch.FirstEventIndex.ShouldBe(0);
        batch.EventCount.ShouldBe(3);
        batch.FirstEventAt.ShouldBe(content.EarliestEventAt);
        batch.LastEventAt.ShouldBe(content.LatestEventAt);
        batch.ContentFingerprint.ShouldBe(Keys.Of(content.Sha256()));
        batch.OffsetFingerprint.ShouldBe(Keys.Of(content.Sha256()));
        batch.PlaintextBytes.ShouldBe(content.Canonical.Length);
        batch.KeyId.ShouldBe("");
        batch.UploadedBy.ShouldBe(Gateway);
        batch.UploadedAt.ShouldBe(_now);
        accept.Events(batch).ShouldBe(new object[] { accept.Activation!, batch });
    }

    [Fact]
    public void a_new_offset_is_accepted_with_the_next_sequence_and_no_second_activation()
    {
        Upload(0, Events(0, 3), 300);
        _session.Status.ShouldBe(SessionStatus.Active);
        _session.ActivatedAt.ShouldBe(_now);
        _now = _now.AddSeconds(10);

        var second = Upload(300, Events(3, 2), 500).ShouldBeOfType<AcceptBatch>();
        var third = Upload(500, Events(5, 1), 600).ShouldBeOfType<AcceptBatch>();

        second.Activation.ShouldBeNull();
        second.Gap.ShouldBeNull();
        second.Batch.Sequence.ShouldBe(1);
        second.Batch.FirstEventIndex.ShouldBe(0);
        second.Events(second.Batch).ShouldBe(new object[] { second.Batch });
        third.Batch.Sequence.ShouldBe(2);
        _session.BatchCount.ShouldBe(3);
        _session.EventCount.ShouldBe(6);
        _session.ActivatedAt.ShouldBe(Created.AddMinutes(1));
        _session.Complete.ShouldBeTrue();
    }

    [Fact]
    public void a_session_activated_before_its_first_batch_is_not_activated_again()
    {
        _session = _session.Apply(new SessionActivated(_now));

        Decide(0, Events(0, 1)).ShouldBeOfType<AcceptBatch>().Activation.ShouldBeNull();
    }

    // ---- duplicates ----

    [Fact]
    public void the_same_batch_again_at_the_tail_offset_is_a_duplicate()
    {
        Upload(0, Events(0, 3), 300);

        Decide(0, Events(0, 3), 300).ShouldBeOfType<DuplicateBatch>();
        Decide(0, Events(0, 3)).ShouldBeOfType<DuplicateBatch>();
    }

    [Fact]
    public void the_same_events_formatted_differently_are_a_duplicate()
    {
        Upload(0, Events(0, 2));

        Decide(0, Content(Lines(0, 2).Replace(",", " ,\n ").Replace("[", "[\n  "))).ShouldBeOfType<DuplicateBatch>();
    }

    [Fact]
    public void stored_segments_are_needed_only_for_an_offset_older_than_the_tail()
    {
        BatchUploadRules.NeedsStoredSegments(_session, 0).ShouldBeFalse();
        BatchUploadRules.NeedsStoredSegments(_session, 500).ShouldBeFalse();

        Upload(0, Events(0, 2), 200);
        Upload(200, Events(2, 2), 400);

        BatchUploadRules.NeedsStoredSegments(_session, 0).ShouldBeTrue();
        BatchUploadRules.NeedsStoredSegments(_session, 199).ShouldBeTrue();
        BatchUploadRules.NeedsStoredSegments(_session, 200).ShouldBeFalse();
        BatchUploadRules.NeedsStoredSegments(_session, 400).ShouldBeFalse();
    }

    [Fact]
    public void an_old_batch_sent_again_after_newer_ones_is_a_duplicate_given_its_stored_segments()
    {
        Upload(0, Events(0, 2), 200);
        Upload(200, Events(2, 2), 400);
        Upload(400, Events(4, 2), 600);

        Decide(0, Events(0, 2), 200).ShouldBeOfType<DuplicateBatch>();
        Decide(200, Events(2, 2), 400).ShouldBeOfType<DuplicateBatch>();

        var stored = new IncomingBatch(200, 400, Events(2, 2), Keys);
        BatchUploadRules.Decide(_session, stored, [new OffsetSegment(2, Keys.Of(Events(2, 2).Sha256()))], Gateway, _now, Grace)
            .ShouldBeOfType<DuplicateBatch>();
    }

    [Fact]
    public void the_tail_segments_are_used_at_the_tail_offset_whatever_the_caller_passes()
    {
        Upload(0, Events(0, 2), 200);

        BatchUploadRules.Decide(_session, new IncomingBatch(0, 200, Events(0, 2), Keys), [], Gateway, _now, Grace)
            .ShouldBeOfType<DuplicateBatch>();
    }

    // ---- extensions of the stored batch ----

    [Fact]
    public void a_reupload_that_extends_the_tail_batch_stores_only_the_new_events()
    {
        Upload(0, Events(0, 3), 300);
        _now = _now.AddSeconds(30);
        var upload = Events(0, 5);

        var accept = Decide(0, upload, 500).ShouldBeOfType<AcceptBatch>();

        accept.Activation.ShouldBeNull();
        accept.Gap.ShouldBeNull();
        var suffix = Events(3, 2);
        Text(accept.Content).ShouldBe(Text(suffix));
        accept.Content.EventCount.ShouldBe(2);
        var batch = accept.Batch;
        batch.Sequence.ShouldBe(1);
        batch.StartOffset.ShouldBe(0);
        batch.EndOffset.ShouldBe(500);
        batch.FirstEventIndex.ShouldBe(3);
        batch.EventCount.ShouldBe(2);
        batch.FirstEventAt.ShouldBe(suffix.EarliestEventAt);
        batch.LastEventAt.ShouldBe(suffix.LatestEventAt);
        batch.ContentFingerprint.ShouldBe(Keys.Of(suffix.Sha256()));
        batch.OffsetFingerprint.ShouldBe(Keys.Of(upload.Sha256()));
        batch.PlaintextBytes.ShouldBe(suffix.Canonical.Length);
        batch.UploadedAt.ShouldBe(_now);
    }

    [Fact]
    public void after_an_extension_both_the_first_batch_and_the_extended_one_are_duplicates()
    {
        Upload(0, Events(0, 3), 300);
        Upload(0, Events(0, 5), 500).ShouldBeOfType<AcceptBatch>();

        _session.Tail.ShouldNotBeNull().Segments.Select(s => s.EventCountEnd).ShouldBe(new[] { 3, 5 });
        _session.EventCount.ShouldBe(5);
        Decide(0, Events(0, 3), 300).ShouldBeOfType<DuplicateBatch>();
        Decide(0, Events(0, 5), 500).ShouldBeOfType<DuplicateBatch>();
    }

    [Fact]
    public void an_extended_batch_can_be_extended_again()
    {
        Upload(0, Events(0, 3));
        Upload(0, Events(0, 5));

        var accept = Decide(0, Events(0, 7)).ShouldBeOfType<AcceptBatch>();

        accept.Batch.Sequence.ShouldBe(2);
        accept.Batch.FirstEventIndex.ShouldBe(5);
        Text(accept.Content).ShouldBe(Text(Events(5, 2)));
    }

    [Fact]
    public void an_extension_at_an_older_offset_is_a_conflict()
    {
        Upload(0, Events(0, 2), 200);
        Upload(200, Events(2, 2), 400);

        var decision = Decide(0, Events(0, 3));

        ShouldBeRejected(decision, Rejection.BatchConflict, recorded: true);
        ((RejectBatch)decision).Conflict!.Reason.ShouldBe("content-differs-from-stored-batch");
    }

    // ---- conflicts ----

    [Fact]
    public void other_content_at_the_tail_offset_is_rejected_and_recorded()
    {
        Upload(0, Events(0, 3), 300);
        _now = _now.AddSeconds(5);
        var tampered = Content(Batch(Terminal(0, "rm -rf /\r\n"), Terminal(1, "line 1\r\n"), Terminal(2, "line 2\r\n")));

        var decision = Upload(0, tampered, 300);

        ShouldRecordConflict(decision, Rejection.BatchConflict, "content-differs-from-stored-batch", startOffset: 0, endOffset: 300, tampered);
        _session.ConflictCount.ShouldBe(1);
        _session.BatchCount.ShouldBe(1);
        _session.Tail.ShouldNotBeNull().Segments.Count.ShouldBe(1);
    }

    [Fact]
    public void the_same_conflict_sent_again_is_refused_without_being_recorded_again()
    {
        Upload(0, Events(0, 3), 300);
        var tampered = Events(10, 3);
        ShouldBeRejected(Upload(0, tampered, 300), Rejection.BatchConflict, recorded: true);

        ShouldBeRejected(Upload(0, tampered, 300), Rejection.BatchConflict, recorded: false);
        ShouldBeRejected(Upload(0, Events(20, 3), 300), Rejection.BatchConflict, recorded: true);
        ShouldBeRejected(Upload(0, tampered, 300), Rejection.BatchConflict, recorded: true);

        _session.ConflictCount.ShouldBe(3);
    }

    [Fact]
    public void the_conflict_names_the_caller_that_sent_it()
    {
        Upload(0, Events(0, 3));

        var decision = Decide(0, Events(10, 3), actor: RetryingGateway);

        ((RejectBatch)decision).Conflict!.RejectedFrom.ShouldBe(RetryingGateway);
    }

    [Theory]
    [InlineData(0, 2)]
    [InlineData(1, 3)]
    [InlineData(1, 2)]
    [InlineData(1, 5)]
    public void other_events_at_the_tail_offset_are_a_conflict(int first, int count)
    {
        Upload(0, Events(0, 3));

        var decision = Decide(0, Events(first, count));

        ShouldBeRejected(decision, Rejection.BatchConflict, recorded: true);
        ((RejectBatch)decision).Conflict!.RejectedEventCount.ShouldBe(count);
    }

    [Fact]
    public void other_content_at_an_older_offset_is_a_conflict()
    {
        Upload(0, Events(0, 2), 200);
        Upload(200, Events(2, 2), 400);

        ShouldBeRejected(Decide(0, Events(7, 2)), Rejection.BatchConflict, recorded: true);
        ShouldBeRejected(Decide(0, Events(0, 1)), Rejection.BatchConflict, recorded: true);
    }

    [Fact]
    public void an_older_offset_with_nothing_stored_is_out_of_order_and_not_recorded()
    {
        Upload(0, Events(0, 2), 200);
        Upload(400, Events(4, 2), 600);

        ShouldBeRejected(Decide(200, Events(2, 2), 400), Rejection.OutOfOrder, recorded: false);
        ShouldBeRejected(
            BatchUploadRules.Decide(_session, new IncomingBatch(200, 400, Events(2, 2), Keys), null, Gateway, _now, Grace),
            Rejection.OutOfOrder,
            recorded: false);
    }

    // ---- gaps and overlaps ----

    [Fact]
    public void a_batch_starting_past_the_end_of_the_previous_one_is_accepted_with_the_gap()
    {
        Upload(0, Events(0, 2), 200);

        var accept = Upload(350, Events(5, 1), 450).ShouldBeOfType<AcceptBatch>();

        accept.Gap.ShouldBe(new GapDetected(200, 350, _now));
        accept.Activation.ShouldBeNull();
        accept.Events(accept.Batch).ShouldBe(new object[] { accept.Gap!, accept.Batch });
        _session.GapCount.ShouldBe(1);
        _session.MissingBytes.ShouldBe(150);
        _session.Gaps.ShouldBe(new[] { new Gap(200, 350) });
        _session.Complete.ShouldBeFalse();
    }

    [Fact]
    public void a_batch_starting_exactly_at_the_end_of_the_previous_one_has_no_gap()
    {
        Upload(0, Events(0, 2), 200);

        Decide(200, Events(2, 2), 400).ShouldBeOfType<AcceptBatch>().Gap.ShouldBeNull();
    }

    [Fact]
    public void without_a_known_end_offset_no_gap_can_be_detected()
    {
        Upload(0, Events(0, 2));

        Decide(5000, Events(50, 1)).ShouldBeOfType<AcceptBatch>().Gap.ShouldBeNull();
    }

    [Fact]
    public void a_first_batch_that_does_not_start_at_zero_is_missing_the_beginning()
    {
        var accept = Decide(1000, Events(0, 1), 1100).ShouldBeOfType<AcceptBatch>();

        accept.Gap.ShouldBe(new GapDetected(0, 1000, _now));
        accept.Activation.ShouldNotBeNull();
        accept.Batch.Sequence.ShouldBe(0);
        accept.Events(accept.Batch).ShouldBe(new object[] { accept.Activation!, accept.Gap!, accept.Batch });
    }

    [Fact]
    public void a_batch_starting_inside_the_previous_one_is_an_overlap_and_recorded()
    {
        Upload(0, Events(0, 2), 200);
        var overlapping = Events(1, 2);

        var decision = Upload(100, overlapping, 300);

        ShouldRecordConflict(decision, Rejection.BatchOverlap, "overlaps-previous-batch", startOffset: 100, endOffset: 300, overlapping);
        _session.ConflictCount.ShouldBe(1);
        _session.BatchCount.ShouldBe(1);
        _session.Tail!.StartOffset.ShouldBe(0);
    }

    // ---- ended sessions ----

    [Fact]
    public void an_ended_session_takes_new_batches_until_the_end_of_its_grace_window()
    {
        Upload(0, Events(0, 1), 100);
        End();
        _now += Grace;

        var accept = Decide(100, Events(1, 1), 200).ShouldBeOfType<AcceptBatch>();

        accept.Activation.ShouldBeNull();
        accept.Batch.Sequence.ShouldBe(1);
    }

    [Fact]
    public void an_ended_session_refuses_new_batches_after_its_grace_window()
    {
        Upload(0, Events(0, 1), 100);
        End();
        _now += Grace + TimeSpan.FromTicks(1);

        ShouldBeRejected(Decide(100, Events(1, 1), 200), Rejection.SessionClosed, recorded: false, lost: true);
    }

    [Fact]
    public void a_new_batch_refused_after_the_grace_window_is_recorded_as_lost_and_the_session_is_no_longer_complete()
    {
        Upload(0, Events(0, 1), 100);
        End();
        _now += Grace + TimeSpan.FromSeconds(1);
        var late = Events(1, 3);

        var refusal = Upload(100, late, 400).ShouldBeOfType<RejectBatch>();

        refusal.Reason.ShouldBe(Rejection.SessionClosed);
        var recorded = refusal.Late.ShouldNotBeNull();
        recorded.StartOffset.ShouldBe(100);
        recorded.EndOffset.ShouldBe(400);
        recorded.RefusedFingerprint.ShouldBe(Keys.Of(late.Sha256()));
        recorded.RefusedEventCount.ShouldBe(3);
        recorded.RefusedFrom.ShouldBe(Gateway);
        recorded.At.ShouldBe(_now);
        _session.LateRefusedCount.ShouldBe(1);
        _session.Complete.ShouldBeFalse();
        _session.BatchCount.ShouldBe(1);
    }

    [Fact]
    public void the_tails_stored_events_followed_by_more_sent_late_are_recorded_as_lost()
    {
        Upload(100, Events(1, 3), 400);
        End();
        _now += Grace + TimeSpan.FromSeconds(1);

        ShouldBeRejected(Upload(100, Events(1, 5), 600), Rejection.SessionClosed, recorded: false, lost: true);
        Decide(100, Events(1, 3), 400).ShouldBeOfType<DuplicateBatch>();
        ShouldBeRejected(Decide(100, Events(7, 3), 400), Rejection.SessionClosed, recorded: false, lost: false);

        _session.LateRefusedCount.ShouldBe(1);
        _session.Complete.ShouldBeFalse();
    }

    [Fact]
    public void other_content_sent_late_at_an_offset_already_refused_is_recorded_too()
    {
        Upload(0, Events(0, 1), 100);
        End();
        _now += Grace + TimeSpan.FromSeconds(1);

        ShouldBeRejected(Upload(100, Events(1, 1), 200), Rejection.SessionClosed, recorded: false, lost: true);
        ShouldBeRejected(Upload(100, Events(1, 2), 300), Rejection.SessionClosed, recorded: false, lost: true);
        ShouldBeRejected(Upload(100, Events(1, 2), 300), Rejection.SessionClosed, recorded: false, lost: false);

        _session.LateRefusedCount.ShouldBe(2);
    }

    [Fact]
    public void a_late_batch_sent_again_is_refused_without_being_recorded_again_and_the_next_one_is()
    {
        Upload(0, Events(0, 1), 100);
        End();
        _now += Grace + TimeSpan.FromSeconds(1);
        Upload(100, Events(1, 1), 200).ShouldBeOfType<RejectBatch>().Late.ShouldNotBeNull();

        Upload(100, Events(1, 1), 200).ShouldBeOfType<RejectBatch>().Late.ShouldBeNull();
        Upload(200, Events(2, 1), 300).ShouldBeOfType<RejectBatch>().Late.ShouldNotBeNull();

        _session.LateRefusedCount.ShouldBe(2);
    }

    [Fact]
    public void a_late_upload_at_an_older_offset_adds_nothing_lost_and_is_not_recorded_as_late()
    {
        Upload(0, Events(0, 1), 100);
        Upload(100, Events(1, 1), 200);
        End();
        _now += Grace + TimeSpan.FromSeconds(1);

        Upload(0, Events(5, 1), 100).ShouldBeOfType<RejectBatch>().Late.ShouldBeNull();

        _session.Complete.ShouldBeTrue();
    }

    [Fact]
    public void an_ended_session_still_answers_retries_as_duplicates_after_its_grace_window()
    {
        Upload(0, Events(0, 1), 100);
        Upload(100, Events(1, 2), 300);
        End();
        _now += TimeSpan.FromDays(30);

        Decide(100, Events(1, 2), 300).ShouldBeOfType<DuplicateBatch>();
        Decide(0, Events(0, 1), 100).ShouldBeOfType<DuplicateBatch>();
    }

    // ---- legacy bulk upload ----

    private static RecordingBatch Logs(params string[] events) => LegacyContent($"{{\"logs\":{Batch(events)}}}");

    private void StoreLegacy(AcceptLegacyLogs accept, long version)
    {
        if (accept.Activation is not null) _session = _session.Apply(accept.Activation);
        _session = _session.Apply(new Event<LegacyLogsUploaded>(accept.Logs) { Version = version });
    }

    [Fact]
    public void the_first_legacy_upload_of_a_starting_session_is_accepted_and_activates_it()
    {
        var logs = Logs(Query(3, "SELECT 1"), Query(1, "BEGIN"), Query(5, "COMMIT"));

        var accept = LegacyLogsRules.Decide(_session, logs, Keys, Gateway, _now, Grace).ShouldBeOfType<AcceptLegacyLogs>();

        accept.Activation.ShouldBe(new SessionActivated(_now));
        var uploaded = accept.Logs;
        uploaded.EventCount.ShouldBe(3);
        uploaded.FirstEventAt.ShouldBe(logs.EarliestEventAt);
        uploaded.LastEventAt.ShouldBe(logs.LatestEventAt);
        uploaded.FirstEventAt!.Value.ShouldBeLessThan(uploaded.LastEventAt!.Value);
        uploaded.ContentFingerprint.ShouldBe(Keys.Of(logs.Sha256()));
        uploaded.PlaintextBytes.ShouldBe(logs.Canonical.Length);
        uploaded.KeyId.ShouldBe("");
        uploaded.UploadedBy.ShouldBe(Gateway);
        uploaded.UploadedAt.ShouldBe(_now);
        accept.Events(uploaded).ShouldBe(new object[] { accept.Activation!, uploaded });
    }

    [Fact]
    public void a_legacy_upload_to_an_active_session_does_not_activate_it_again()
    {
        Upload(0, Events(0, 1));

        var accept = LegacyLogsRules.Decide(_session, Logs(Terminal(1, "x")), Keys, Gateway, _now, Grace).ShouldBeOfType<AcceptLegacyLogs>();

        accept.Activation.ShouldBeNull();
        accept.Events(accept.Logs).ShouldBe(new object[] { accept.Logs });
    }

    [Fact]
    public void the_same_legacy_logs_again_are_a_duplicate()
    {
        var logs = Logs(Query(0, "SELECT 1"), Query(1, "SELECT 2"));
        StoreLegacy(LegacyLogsRules.Decide(_session, logs, Keys, Gateway, _now, Grace).ShouldBeOfType<AcceptLegacyLogs>(), version: 3);

        _session.Legacy.ShouldNotBeNull().StreamVersion.ShouldBe(3);
        _session.Legacy.EventCount.ShouldBe(2);
        _session.EventCount.ShouldBe(2);
        _session.Status.ShouldBe(SessionStatus.Active);
        var reformatted = LegacyContent($"{{ \"logs\" : [\n {Query(0, "SELECT 1")} ,\n {Query(1, "SELECT 2")} ] }}");
        LegacyLogsRules.Decide(_session, reformatted, Keys, Gateway, _now, Grace).ShouldBeOfType<DuplicateBatch>();
    }

    [Fact]
    public void different_legacy_logs_after_the_first_are_rejected_and_recorded_once_however_often_sent()
    {
        StoreLegacy(LegacyLogsRules.Decide(_session, Logs(Query(0, "SELECT 1")), Keys, Gateway, _now, Grace).ShouldBeOfType<AcceptLegacyLogs>(), version: 2);
        var other = Logs(Query(0, "DROP TABLE users"));

        var first = LegacyLogsRules.Decide(_session, other, Keys, Gateway, _now, Grace);
        ShouldBeRejected(first, Rejection.BatchConflict, recorded: true);
        var conflict = ((RejectBatch)first).Conflict!;
        conflict.Reason.ShouldBe("legacy-logs-differ");
        conflict.RejectedFingerprint.ShouldBe(Keys.Of(other.Sha256()));
        conflict.RejectedEventCount.ShouldBe(1);
        _session = _session.Apply(conflict);

        ShouldBeRejected(LegacyLogsRules.Decide(_session, other, Keys, Gateway, _now, Grace), Rejection.BatchConflict, recorded: false);
        ShouldBeRejected(LegacyLogsRules.Decide(_session, Logs(), Keys, Gateway, _now, Grace), Rejection.BatchConflict, recorded: true);
    }

    [Fact]
    public void empty_legacy_logs_sent_late_lose_nothing_and_a_late_batch_at_offset_zero_does_not_hide_late_logs()
    {
        End();
        _now += Grace + TimeSpan.FromSeconds(1);

        ShouldBeRejected(LegacyLogsRules.Decide(_session, Logs(), Keys, Gateway, _now, Grace), Rejection.SessionClosed, recorded: false, lost: false);
        ShouldBeRejected(Upload(0, Events(0, 2), 200), Rejection.SessionClosed, recorded: false, lost: true);
        ShouldBeRejected(LegacyLogsRules.Decide(_session, Logs(Query(0, "SELECT 1")), Keys, Gateway, _now, Grace), Rejection.SessionClosed, recorded: false, lost: true);
    }

    [Fact]
    public void legacy_logs_first_sent_after_the_grace_window_are_recorded_as_lost_once()
    {
        End();
        _now += Grace + TimeSpan.FromSeconds(1);
        var logs = Logs(Query(0, "SELECT 1"), Query(1, "SELECT 2"));

        var late = LegacyLogsRules.Decide(_session, logs, Keys, Gateway, _now, Grace).ShouldBeOfType<RejectBatch>().Late.ShouldNotBeNull();
        late.RefusedEventCount.ShouldBe(2);
        late.RefusedFingerprint.ShouldBe(Keys.Of(logs.Sha256()));
        _session = _session.Apply(late);

        LegacyLogsRules.Decide(_session, logs, Keys, Gateway, _now, Grace).ShouldBeOfType<RejectBatch>().Late.ShouldBeNull();
        _session.Complete.ShouldBeFalse();
    }

    [Fact]
    public void legacy_logs_are_accepted_within_the_grace_window_of_an_ended_session()
    {
        End();
        _now += Grace;

        var accept = LegacyLogsRules.Decide(_session, Logs(Query(0, "SELECT 1")), Keys, Gateway, _now, Grace).ShouldBeOfType<AcceptLegacyLogs>();

        accept.Activation.ShouldBeNull();
    }

    [Fact]
    public void legacy_logs_after_the_grace_window_are_refused_but_a_retry_is_still_a_duplicate()
    {
        var logs = Logs(Query(0, "SELECT 1"));
        StoreLegacy(LegacyLogsRules.Decide(_session, logs, Keys, Gateway, _now, Grace).ShouldBeOfType<AcceptLegacyLogs>(), version: 2);
        End();
        _now += Grace + TimeSpan.FromSeconds(1);

        LegacyLogsRules.Decide(_session, logs, Keys, Gateway, _now, Grace).ShouldBeOfType<DuplicateBatch>();
        LegacyLogsRules.Decide(_session, Logs(Query(0, "SELECT 2")), Keys, Gateway, _now, Grace).ShouldBeOfType<RejectBatch>();
    }

    [Fact]
    public void legacy_logs_first_sent_after_the_grace_window_are_refused_as_closed()
    {
        End();
        _now += Grace + TimeSpan.FromTicks(1);

        ShouldBeRejected(LegacyLogsRules.Decide(_session, Logs(Query(0, "SELECT 1")), Keys, Gateway, _now, Grace), Rejection.SessionClosed, recorded: false, lost: true);
    }

    [Fact]
    public void empty_legacy_logs_are_accepted_with_no_event_times()
    {
        var logs = Logs();

        var accept = LegacyLogsRules.Decide(_session, logs, Keys, Gateway, _now, Grace).ShouldBeOfType<AcceptLegacyLogs>();

        accept.Logs.EventCount.ShouldBe(0);
        accept.Logs.FirstEventAt.ShouldBeNull();
        accept.Logs.LastEventAt.ShouldBeNull();
        accept.Logs.ContentFingerprint.ShouldBe(Keys.Of(SHA256.HashData("[]"u8)));
        accept.Logs.PlaintextBytes.ShouldBe(2);
        accept.Activation.ShouldNotBeNull();
    }

    // ---- applying events ----

    private static BatchUploaded Uploaded(long sequence, long startOffset, long? endOffset, int firstEventIndex, int eventCount, byte offsetHash, DateTimeOffset at) =>
        new(sequence, startOffset, endOffset, firstEventIndex, eventCount, at, at, [0xC0, offsetHash], [0x0F, offsetHash], 100 * eventCount, "key-1", Gateway, at);

    [Fact]
    public void the_listed_gaps_are_capped_while_their_count_and_missing_bytes_keep_growing()
    {
        var session = _session;
        for (var i = 0; i < PamSession.MaxListedGaps + 50; i++)
        {
            session = session.Apply(new GapDetected(i * 1000, i * 1000 + i + 1, _now.AddSeconds(i)));
        }

        session.Gaps.Count.ShouldBe(PamSession.MaxListedGaps);
        session.Gaps[0].ShouldBe(new Gap(0, 1));
        session.Gaps[^1].ShouldBe(new Gap((PamSession.MaxListedGaps - 1) * 1000, (PamSession.MaxListedGaps - 1) * 1000 + PamSession.MaxListedGaps));
        session.GapCount.ShouldBe(PamSession.MaxListedGaps + 50);
        session.MissingBytes.ShouldBe(Enumerable.Range(1, PamSession.MaxListedGaps + 50).Sum(n => (long)n));
        session.UpdatedAt.ShouldBe(_now.AddSeconds(PamSession.MaxListedGaps + 49));
        session.Complete.ShouldBeFalse();
    }

    [Fact]
    public void a_batch_at_the_tail_offset_appends_a_segment_and_a_new_offset_replaces_the_tail()
    {
        var first = _session.Apply(Uploaded(0, 0, 300, 0, 3, 1, _now));
        first.Tail!.StartOffset.ShouldBe(0);
        first.Tail.EndOffset.ShouldBe(300);
        first.Tail.Segments.Count.ShouldBe(1);
        first.Tail.Segments[0].EventCountEnd.ShouldBe(3);
        first.Tail.Segments[0].Fingerprint.ShouldBe(new byte[] { 0x0F, 1 });

        var extended = first.Apply(Uploaded(1, 0, 500, 3, 2, 2, _now.AddSeconds(1)));
        extended.Tail!.StartOffset.ShouldBe(0);
        extended.Tail.EndOffset.ShouldBe(500);
        extended.Tail.Segments.Select(s => s.EventCountEnd).ShouldBe(new[] { 3, 5 });
        extended.Tail.Segments[1].Fingerprint.ShouldBe(new byte[] { 0x0F, 2 });

        var withoutEnd = extended.Apply(Uploaded(2, 0, null, 5, 1, 3, _now.AddSeconds(2)));
        withoutEnd.Tail!.EndOffset.ShouldBe(500);
        withoutEnd.Tail.Segments.Select(s => s.EventCountEnd).ShouldBe(new[] { 3, 5, 6 });

        var next = withoutEnd.Apply(Uploaded(3, 600, null, 0, 4, 4, _now.AddSeconds(3)));
        next.Tail!.StartOffset.ShouldBe(600);
        next.Tail.EndOffset.ShouldBeNull();
        next.Tail.Segments.Select(s => s.EventCountEnd).ShouldBe(new[] { 4 });
        next.Tail.Segments[0].Fingerprint.ShouldBe(new byte[] { 0x0F, 4 });

        next.BatchCount.ShouldBe(4);
        next.EventCount.ShouldBe(10);
        next.PlaintextBytes.ShouldBe(1000);
        next.LastUploadAt.ShouldBe(_now.AddSeconds(3));
        next.UpdatedAt.ShouldBe(_now.AddSeconds(3));
    }

    [Fact]
    public void applying_events_never_changes_the_session_it_was_applied_to()
    {
        var before = _session;

        var after = before.Apply(Uploaded(0, 0, 100, 0, 1, 1, _now)).Apply(new GapDetected(100, 200, _now));

        before.Tail.ShouldBeNull();
        before.GapCount.ShouldBe(0);
        after.Tail.ShouldNotBeNull();
        after.GapCount.ShouldBe(1);
    }
}
