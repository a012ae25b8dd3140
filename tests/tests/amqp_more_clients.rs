//! More AMQP 0-9-1 clients nobody on the team wrote, each against its own broker in this
//! process: a real Celery worker (kombu over py-amqp) with the RPC result backend, ETA tasks
//! that change the prefetch at run time, and retries; aio-pika (asyncio, over aiormq); and
//! amqplib (Node), whose typed headers include floats. The scripts are in
//! `tests/clients/{celery,aio_pika,amqplib}/`; the pinned packages install on first use
//! (`.ci/run` installs them first).

use switchyard_tests::client_scripts::{amqp_broker, node, python, python_with};

// ---- Celery: a worker process (`celery -A tasks worker --pool=solo`) started by each script.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celery_worker_runs_tasks_with_results_through_the_rpc_backend() {
    let broker = amqp_broker(|_| {}).await;
    let output = python(&broker, "celery", "tasks_and_results.py");
    // What kombu was told and concluded: not RabbitMQ, so basic.qos global=false means the
    // spec's per-channel prefetch, and the worker sent exactly that.
    for expected in [
        "server product='Switchyard'",
        "kombu qos_semantics_matches_spec=True",
        "worker basic.qos calls (prefetch_count, global): [(1, False)",
    ] {
        assert!(
            output.contains(expected),
            "{expected:?} missing from:\n{output}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celery_eta_tasks_raise_the_prefetch_of_the_running_consumer() {
    let broker = amqp_broker(|_| {}).await;
    let output = python(&broker, "celery", "eta_and_prefetch.py");
    assert!(
        output.contains("(4, False)"),
        "the prefetch reached 4 with global=false:\n{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celery_eta_tasks_with_global_qos_as_celery_sends_to_rabbitmq_3() {
    let broker = amqp_broker(|_| {}).await;
    let output = python_with(
        &broker,
        "celery",
        "eta_and_prefetch.py",
        &[("PRETEND_RABBITMQ_3", "1".to_owned())],
    );
    assert!(
        output.contains("(4, True)"),
        "the prefetch reached 4 with global=true:\n{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celery_task_retries_then_succeeds_and_one_runs_out_of_retries() {
    let broker = amqp_broker(|_| {}).await;
    python(&broker, "celery", "retries.py");
}

// ---- aio-pika

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aio_pika_publishes_with_confirms_and_consumes_with_prefetch() {
    let broker = amqp_broker(|_| {}).await;
    python(&broker, "aio_pika", "confirms_and_prefetch.py");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aio_pika_routes_through_a_topic_exchange() {
    let broker = amqp_broker(|_| {}).await;
    python(&broker, "aio_pika", "topics.py");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aio_pika_rpc_by_hand_with_direct_reply_to_and_with_its_rpc_pattern() {
    let broker = amqp_broker(|_| {}).await;
    python(&broker, "aio_pika", "rpc.py");
}

// ---- amqplib (Node)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqplib_confirm_channel_prefetch_and_nack_with_requeue() {
    let broker = amqp_broker(|_| {}).await;
    node(&broker, "amqplib", "confirms_prefetch_nack.js");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqplib_headers_exchange_and_typed_headers_with_floats_round_trip() {
    let broker = amqp_broker(|_| {}).await;
    let output = node(&broker, "amqplib", "headers_typed.js");
    assert!(
        output.contains("\"pi\":3.141592653589793") && output.contains("\"single\":1.5"),
        "a double and a float came back:\n{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqplib_basic_get_and_a_channel_error_closes_only_its_channel() {
    let broker = amqp_broker(|_| {}).await;
    node(&broker, "amqplib", "get_and_channel_error.js");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqplib_tutorial_exclusive_queue_which_amqplib_declares_durable() {
    let broker = amqp_broker(|_| {}).await;
    node(&broker, "amqplib", "exclusive_default_durable.js");
}
