using Marten;
using Marten.Services;
using Npgsql;

namespace PamEventStore.Storage;

/// <summary>
/// Marten's command log, written as its default logger writes it (schema changes at Information,
/// commands at Debug, failures at Error) but for one case: a command cancelled because its caller went
/// away (a reader that closed its log page or live tail mid-query) is not a fault of the node, and is
/// logged at Debug; nor is a session's stream found already started by a create sent twice at once, which
/// the create answers as a retry, logged at Information. Parameter values are left out: what fails is found
/// by the SQL and the request's trace id.
/// </summary>
public sealed partial class StoreLog(ILogger<IDocumentStore> logger) : IMartenLogger, IMartenSessionLogger
{
    public IMartenSessionLogger StartSession(IQuerySession session) => this;

    public void SchemaChange(string sql) => SchemaChanged(sql);

    public void LogSuccess(NpgsqlCommand command)
    {
        if (logger.IsEnabled(LogLevel.Debug)) Executed(command.CommandText);
    }

    public void LogSuccess(NpgsqlBatch batch)
    {
        if (!logger.IsEnabled(LogLevel.Debug)) return;
        foreach (var command in batch.BatchCommands) Executed(command.CommandText);
    }

    public void LogFailure(NpgsqlCommand command, Exception ex) => Failed(ex, command.CommandText);

    public void LogFailure(NpgsqlBatch batch, Exception ex) => Failed(ex, string.Join(";\n", batch.BatchCommands.Cast<NpgsqlBatchCommand>().Select(c => c.CommandText)));

    public void LogFailure(Exception ex, string message) => Failed(ex, message);

    public void RecordSavedChanges(IDocumentSession session, IChangeSet commit)
    {
    }

    public void OnBeforeExecute(NpgsqlCommand command)
    {
    }

    public void OnBeforeExecute(NpgsqlBatch batch)
    {
    }

    private void Failed(Exception ex, string sql)
    {
        if (ex is OperationCanceledException || ex.InnerException is OperationCanceledException) Cancelled(sql);
        else if (ex is Marten.Exceptions.ExistingStreamIdCollisionException) StartedMeanwhile(sql);
        else FailedWith(ex, sql);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Executed schema update SQL:\n{Sql}")]
    private partial void SchemaChanged(string sql);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Marten executed: {Sql}")]
    private partial void Executed(string sql);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Marten's command was cancelled by its caller: {Sql}")]
    private partial void Cancelled(string sql);

    [LoggerMessage(Level = LogLevel.Information, Message = "Marten found the stream already started, by a create of the same session at the same moment (answered as its retry): {Sql}")]
    private partial void StartedMeanwhile(string sql);

    [LoggerMessage(Level = LogLevel.Error, Message = "Marten encountered an exception executing\n{Sql}")]
    private partial void FailedWith(Exception ex, string sql);
}
