//! Parse → print → parse is the identity on generated queries, and the
//! parser never panics on arbitrary or mutated input.

#![allow(clippy::unwrap_used)]

use danaus_query::syntax::ast::*;
use danaus_query::syntax::parse;
use proptest::prelude::*;

fn ident() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,6}".prop_filter("keywords", |s| {
        !matches!(s.as_str(), "val" | "true" | "false" | "target" | "metric" | "and" | "or" | "not")
    })
}

fn field() -> impl Strategy<Value = FieldRef> {
    (prop::option::of(prop_oneof![Just(Qualifier::Target), Just(Qualifier::Metric)]), ident())
        .prop_map(|(qualifier, name)| FieldRef { qualifier, name, span: Span::default() })
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any::<bool>().prop_map(Literal::Bool),
        (0i64..i64::MAX).prop_map(Literal::Int),
        (0f64..1e300).prop_map(Literal::Float),
        "\\PC{0,8}".prop_map(Literal::Str),
        Just(Literal::Str("tab\t\"quote\" back\\slash \u{1}".into())),
    ]
}

fn e(kind: ExprKind) -> Expr {
    Expr { kind, span: Span::default() }
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        literal().prop_map(|l| e(ExprKind::Lit(l))),
        field().prop_map(|f| e(ExprKind::Field(f))),
        prop::option::of(0u32..4).prop_map(|i| e(ExprKind::Val(i))),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        let op = prop_oneof![
            Just(BinOp::Or),
            Just(BinOp::And),
            Just(BinOp::Eq),
            Just(BinOp::Ne),
            Just(BinOp::Lt),
            Just(BinOp::Le),
            Just(BinOp::Gt),
            Just(BinOp::Ge),
            Just(BinOp::Add),
            Just(BinOp::Sub),
            Just(BinOp::Mul),
            Just(BinOp::Div),
            Just(BinOp::Rem),
        ];
        prop_oneof![
            (op, inner.clone(), inner.clone()).prop_map(|(op, l, r)| e(ExprKind::Binary(op, Box::new(l), Box::new(r)))),
            (prop_oneof![Just(UnOp::Not), Just(UnOp::Neg)], inner.clone())
                .prop_map(|(op, x)| e(ExprKind::Unary(op, Box::new(x)))),
            (ident(), prop::collection::vec(inner, 0..3)).prop_map(|(n, a)| e(ExprKind::Call(n, a))),
        ]
    })
}

fn duration() -> impl Strategy<Value = i64> {
    prop_oneof![1i64..1_000_000_000_000_000, Just(60_000_000_000), Just(5_400_000_000_000)]
}

fn op() -> impl Strategy<Value = Op> {
    let aligner = prop::sample::select(Aligner::ALL.to_vec());
    let agg = prop_oneof![
        Just(Aggregator::Sum),
        Just(Aggregator::Mean),
        Just(Aggregator::Count),
        Just(Aggregator::Min),
        Just(Aggregator::Max),
        Just(Aggregator::Stddev),
        Just(Aggregator::Distribution),
        (0f64..=100.0).prop_map(Aggregator::Percentile),
    ];
    prop_oneof![
        expr().prop_map(Op::Filter),
        expr().prop_map(Op::Value),
        (aligner, prop::option::of(duration())).prop_map(|(aligner, window)| Op::Align {
            aligner,
            window,
            span: Span::default()
        }),
        duration().prop_map(|d| Op::Every(d, Span::default())),
        duration().prop_map(|d| Op::Window(d, Span::default())),
        duration().prop_map(|d| Op::TimeShift(d, Span::default())),
        (prop::collection::vec(field(), 0..4), prop::option::of(agg)).prop_map(|(fields, aggregator)| Op::GroupBy {
            fields,
            aggregator,
            span: Span::default()
        }),
        Just(Op::Join(Span::default())),
        Just(Op::Union(Span::default())),
        prop::collection::vec(literal(), 1..3).prop_map(|d| Op::OuterJoin(d, Span::default())),
        (1u64..1000, any::<bool>(), prop::option::of(prop::sample::select(Ranker::ALL.to_vec())))
            .prop_map(|(k, bottom, ranker)| Op::Top { k, bottom, ranker, span: Span::default() }),
    ]
}

fn pipeline() -> impl Strategy<Value = Pipeline> {
    let fetch = ("[A-Z][A-Za-z]{0,6}", "(/[a-z_]{1,6}){1,3}|[a-z_][a-z0-9_:]{0,10}").prop_map(|(target, metric)| {
        Pipeline { source: Source::Fetch { target, metric, span: Span::default() }, ops: vec![] }
    });
    fetch
        .prop_recursive(2, 6, 3, |inner| {
            prop::collection::vec(inner, 1..3)
                .prop_map(|inputs| Pipeline { source: Source::Tables { inputs, span: Span::default() }, ops: vec![] })
        })
        .prop_flat_map(|p| (Just(p), prop::collection::vec(op(), 0..5)))
        .prop_map(|(mut p, ops)| {
            p.ops = ops;
            p
        })
}

proptest! {
    #[test]
    fn print_then_parse_is_identity(p in pipeline()) {
        let q = Query { pipeline: p };
        let text = q.to_string();
        let back = parse(&text).map_err(|err| TestCaseError::fail(format!("{text:?}: {}", err.render(&text))))?;
        prop_assert_eq!(&back, &q, "{}", text);
        prop_assert_eq!(back.to_string(), text);
    }

    #[test]
    fn parser_never_panics(s in "\\PC{0,80}") {
        let _ = parse(&s);
    }

    #[test]
    fn parser_never_panics_on_mutated_queries(p in pipeline(), cut in any::<prop::sample::Index>(), junk in "[|{};()\\[\\],.=!~<>&\"'a-z0-9 /:*-]{0,4}") {
        let text = Query { pipeline: p }.to_string();
        let mut at = cut.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mutated = format!("{}{junk}{}", &text[..at], &text[at..]);
        if let Err(err) = parse(&mutated) {
            // Errors point inside the text.
            prop_assert!(err.span.start <= mutated.len());
            let _ = err.render(&mutated);
        }
    }
}

#[test]
fn error_positions_and_hints() {
    let q = "fetch Host::/cpu\n| align mean(5)";
    let err = parse(q).unwrap_err();
    let shown = err.render(q);
    assert!(shown.starts_with("2:14: expected a duration"), "{shown}");
    assert!(shown.contains("add a unit"), "{shown}");
    let err = parse("fetch Host:: /cpu").unwrap_err();
    assert!(err.message.contains("metric name"), "{err}");
    // Found by the fuzzer: an error at a multi-byte character rendered by
    // slicing inside it.
    let q = "fetch Host::\u{45c}pu/usage";
    let err = parse(q).unwrap_err();
    assert!(err.render(q).contains("expected a metric name"), "{}", err.render(q));
    let err = parse("fetch Host::/cpu | filter a < b < c").unwrap_err();
    assert!(err.hint.unwrap().contains("&&"));
}
