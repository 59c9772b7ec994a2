// hie-lesion-book: Sphinx's search scorer (html_search_scorer, set by hie_core.report.book_search).
// Sphinx's own weights, and one rule: a result on a page of the API reference (book/api*) scores
// below every result on a page of the paper, so the paper's pages come first in any search.
var Scorer = {
  score: (result) => {
    const [docname, , , , score] = result;
    return docname.startsWith("book/api") ? score - 1000 : score;
  },
  objNameMatch: 11,
  objPartialMatch: 6,
  objPrio: { 0: 15, 1: 5, 2: -5 },
  objPrioDefault: 0,
  title: 15,
  partialTitle: 7,
  term: 5,
  partialTerm: 2,
};
